"""Row objects built from values that are already the table's own: read from it, or made by our
code to be written to it.

`Task(**values)` validates every field with pydantic and costs ~120 us; `build` costs ~10 us
(pydantic's construct, which still fills the defaults, then the instrumentation SQLAlchemy gives
a row it loads), so the hot paths build their rows here. `build` gives an object that behaves
like a loaded row (attribute helpers such as `set_committed_value` work on it) but is in no
session; `attached` puts a row read by a driver statement into the session as the ORM would
have loaded it (a copy the session already holds wins, as with an ORM query), so later ORM
changes to it are flushed as usual."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

M = TypeVar("M", bound=SQLModel)


def build(model: type[M], values: Mapping[str, Any]) -> M:
    row = model.model_construct(**values)
    model._sa_class_manager.setup_instance(row)  # type: ignore[attr-defined]
    return row


def build_from(model: type[M], record: Any, columns: tuple[str, ...], start: int = 0) -> M | None:
    """The row held by `record[start:start + len(columns)]` (a RETURNING row's slice), or None
    when it is all NULL (a LEFT JOIN that found nothing)."""
    if record[start] is None:
        return None
    return build(model, dict(zip(columns, record[start : start + len(columns)], strict=True)))


def attached(tx: AsyncSession, model: type[M], record: Any, columns: tuple[str, ...]) -> M:
    session = tx.sync_session
    loaded = session.identity_map.get((model, (record[0],), None))
    if loaded is not None:
        return loaded
    row = build(model, dict(zip(columns, record, strict=True)))
    make_transient_to_detached(row)  # committed values, an identity: what a load gives
    session.add(row)
    return row
