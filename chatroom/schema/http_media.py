"""GraphQL over HTTP media types: which one a request accepts, and how a request error answers.

The GraphQL over HTTP spec's own type, ``application/graphql-response+json``, lets a client tell
a request error (the document did not parse, did not validate, or its variables did not coerce:
nothing executed) from an execution result by the status code: 400 and no ``data`` entry. Under
plain ``application/json`` (what gql and older clients ask for) every result is 200, as that
type's rules say, so existing clients see no change.
"""

from __future__ import annotations

from typing import Any

from strawberry.types import ExecutionResult

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"


def response_media_type(accept: str | None) -> str:
    """The media type to answer with: the one of ours the Accept header weights highest (the
    first listed on a tie); JSON when the header is absent or names neither (e.g. ``*/*``)."""
    best: tuple[str, float] | None = None
    for part in (accept or "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        media = media.lower()
        if media not in (GRAPHQL_RESPONSE_JSON, JSON):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or quality > best[1]):
            best = (media, quality)
    return best[0] if best is not None else JSON


def is_request_error(result: ExecutionResult) -> bool:
    """Nothing executed: no data, and every error lacks a path (field errors always have one)."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


def answer_request_error(response: dict[str, Any]) -> dict[str, Any]:
    """The body of a request error under application/graphql-response+json: no ``data`` entry."""
    return {key: value for key, value in response.items() if key != "data"}
