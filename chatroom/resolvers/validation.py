"""Input normalisation and limits, shared by every resolver (one rule, one place)."""

from __future__ import annotations

import re
import uuid

from chatroom.resolvers.errors import BadInput, NotFound

USER_ROLE = "user"
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_CONTENT_CHARS = 100_000
MAX_NAME_CHARS = 100
MAX_TEAM_ROLES = 12
MAX_IDEMPOTENCY_KEY_CHARS = 200


def role(value: str, *, field: str = "role") -> str:
    """Roles are stored lower case; `Builder` and `builder` are one role."""
    normalized = value.strip().lower()
    if not ROLE_PATTERN.match(normalized):
        raise BadInput(
            f"{field} {value!r} is not a valid role name: use a lower-case letter followed by "
            "up to 31 letters, digits or dashes (for example 'builder').",
            field=field,
        )
    return normalized


def storable(value: str, *, field: str) -> str:
    """PostgreSQL text holds neither NUL characters nor unpaired surrogates (which JSON can
    carry as \\ud800 escapes): refuse them here, or the driver would fail mid-transaction."""
    if "\x00" in value:
        raise BadInput(
            f"{field} contains a NUL character (\\u0000), which cannot be stored: remove it.",
            field=field,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(
            f"{field} contains an unpaired surrogate (an invalid \\ud800-\\udfff escape): "
            "send valid Unicode text.",
            field=field,
        ) from None
    return value


def content(value: str, *, field: str = "content") -> str:
    storable(value, field=field)
    if not value.strip():
        raise BadInput(f"{field} is empty: write the message text.", field=field)
    if len(value) > MAX_CONTENT_CHARS:
        raise BadInput(
            f"{field} has {len(value)} characters; the limit is {MAX_CONTENT_CHARS}. "
            "Shorten it or point to a file in the repository instead.",
            field=field,
            limit=MAX_CONTENT_CHARS,
        )
    return value


def name(value: str, *, field: str = "name") -> str:
    trimmed = storable(value, field=field).strip()
    if not trimmed:
        raise BadInput(f"{field} is empty: give it a few words.", field=field)
    if len(trimmed) > MAX_NAME_CHARS:
        raise BadInput(
            f"{field} has {len(trimmed)} characters; the limit is {MAX_NAME_CHARS}.",
            field=field,
            limit=MAX_NAME_CHARS,
        )
    return trimmed


def entity_id(value: str, *, kind: str) -> uuid.UUID:
    """An id that cannot exist is answered like one that does not: NOT_FOUND."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(
            f"No {kind} with id {value[:80]!r} is visible to you. Check the id "
            f"(a {kind} id looks like 0f8fad5b-d9cb-469f-a165-70867728950e)."
        ) from None


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise BadInput(
            f"idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters.",
            field="idempotencyKey",
        )
    return storable(value, field="idempotencyKey")
