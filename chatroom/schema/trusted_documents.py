"""Trusted documents (SPEC §13): the GraphQL documents our own clients send, known by sha256.

The registry is every operation file the product ships: the CLI's (also used by the agent
runner and the MCP server) in chatroom/cli/operations/ and the web page's in
chatroom/web/operations/. A document's text is its file followed by the shared fragments it
spreads (chatroom/documents.py `document_text`: `...TaskFields` brings in
`fragments/TaskFields.graphql`), which is what the CLI and the page send. Each document is
registered under two hashes: of that text and of graphql-core's printed form of it (what gql
sends: it parses the document and prints it back).
Hashes are lowercase hex; a client names one as `documentId: "sha256:<hex>"` (the GraphQL over
HTTP persisted-documents form) or bare hex.

CHATROOM_TRUSTED_DOCUMENTS:

- `off`: any document text runs; `documentId` is refused (BAD_USER_INPUT).
- `allow` (default): any document text runs, and a registered `documentId` runs its document.
- `only`: only registered documents run, sent as text or by id; anything else, GraphiQL's
  typing included, is refused with FORBIDDEN and a message that says why.

`documentId` is an HTTP request's (POST body key or GET parameter), resolved by the view before
the operation starts; the `only` rule is a validation rule, so HTTP and websocket operations
obey it alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Literal, cast

from graphql import (
    BREAK,
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    VisitorAction,
    parse,
    print_ast,
)

from chatroom.config import settings

# Re-exported: the rule the registry follows is the one the clients compose their documents by.
from chatroom.documents import FRAGMENT_SPREAD as FRAGMENT_SPREAD
from chatroom.documents import FRAGMENTS as FRAGMENTS
from chatroom.documents import document_text
from chatroom.resolvers.errors import BadInput, ErrorCode, NotFound

Mode = Literal["off", "allow", "only"]
MODES: tuple[Mode, ...] = ("off", "allow", "only")
ENV = "CHATROOM_TRUSTED_DOCUMENTS"
PREFIX = "sha256:"

PACKAGE = Path(__file__).resolve().parent.parent
DOCUMENT_DIRS = (PACKAGE / "cli" / "operations", PACKAGE / "web" / "operations")


def mode() -> Mode:
    """The configured mode; the app checks it once at start-up (`check_mode`)."""
    return cast("Mode", settings().trusted_documents)


def check_mode() -> None:
    if mode() not in MODES:
        raise SystemExit(f"{ENV} must be one of {', '.join(MODES)} (got {mode()!r}).")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@cache
def registry() -> Mapping[str, str]:
    """sha256 hex -> document text, for every shipped operation file (read once)."""
    documents: dict[str, str] = {}
    for folder in DOCUMENT_DIRS:
        for path in sorted(folder.glob("*.graphql")):
            text = document_text(path)
            documents[sha256(text)] = text
            documents[sha256(print_ast(parse(text)))] = text
    return documents


def document_id(text: str) -> str:
    """The id a client sends for a document text (the file's own text)."""
    return PREFIX + sha256(text)


def lookup(document_id: object) -> str:
    """The text of a registered document, or a coded refusal that says what to send."""
    if not isinstance(document_id, str):
        raise BadInput("documentId must be a string: 'sha256:<64 hex digits>'.")
    key = document_id.removeprefix(PREFIX).lower()
    text = registry().get(key)
    if text is None:
        raise NotFound(
            f"No trusted document has id {document_id!r}. Send the document's text as `query`, "
            "or the id of one of this server's documents ('sha256:<hex of the text>')."
        )
    return text


def request_document_id(body: bytes | None, query_params: Mapping[str, str | None]) -> object:
    """The `documentId` of an HTTP request with no `query`: a GET parameter or a key of the
    JSON body (read again only for such requests)."""
    if "documentId" in query_params:
        return query_params["documentId"]
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("documentId") if isinstance(data, dict) else None


def resolve_request(query: str | None, document_id: object) -> str | None:
    """The document text a request runs: its `query`, or the registered document its
    `documentId` names (refused with a coded error when unknown, or when the mode is off)."""
    if query is not None or document_id is None:
        return query
    if mode() == "off":
        raise BadInput(
            f"This server does not accept documentId ({ENV}=off): send the document's text "
            "as `query`."
        )
    return lookup(document_id)


class TrustedOnly(ASTValidationRule):
    """In `only` mode, a document whose text is not registered fails validation: nothing of
    it runs, and the error goes through the same coding, logging and metrics as any other
    validation error (HTTP and websockets alike). Validation results are cached per text."""

    def enter_document(self, node: DocumentNode, *_args: object) -> VisitorAction:
        text = node.loc.source.body if node.loc else None
        if text is None or sha256(text) not in registry():
            self.report_error(
                GraphQLError(
                    f"This server runs only its own clients' documents ({ENV}=only): the CLI's "
                    "and the web page's. Send one of those (by text or documentId), or ask the "
                    f"operator to set {ENV}=allow to run other documents, GraphiQL's included.",
                    extensions={"code": str(ErrorCode.FORBIDDEN)},
                )
            )
        return BREAK


def validation_rules() -> tuple[type[ASTValidationRule], ...]:
    return (TrustedOnly,) if mode() == "only" else ()
