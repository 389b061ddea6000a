"""Idempotency keys: a retry with the same key gets the first result; a different input with
the same key is refused. The key is reserved by an INSERT in the mutation's own transaction, so
a concurrent retry blocks on the unique key until the first commits (then replays it) or rolls
back (then runs itself). A refused mutation rolls back and leaves no record.

`begin` / `Keyed.record` are the one way a mutation uses a key; the outcome (a dataclass of
rows) is stored and rebuilt by `dump` / `load`, read from the dataclass's own fields."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.events import snapshot
from chatroom.db.models import IdempotencyRecord
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import IdempotencyKeyReused

T = TypeVar("T")


def _request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


async def reserve_or_replay(
    tx: AsyncSession, caller: Caller, operation: str, key: str | None, request: dict[str, Any]
) -> dict[str, Any] | None:
    """None: go ahead (and call `record`). A dict: the stored first result to return."""
    if key is None:
        return None
    request_hash = _request_hash(request)
    reserved = await tx.exec(
        insert(IdempotencyRecord)
        .values(user_id=caller.user_id, operation=operation, key=key, request_hash=request_hash)
        .on_conflict_do_nothing()
        .returning(col(IdempotencyRecord.key))
    )
    if reserved.first() is not None:
        return None
    existing = (
        await tx.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == caller.user_id,
                IdempotencyRecord.operation == operation,
                IdempotencyRecord.key == key,
            )
        )
    ).one()
    if existing.request_hash != request_hash or existing.response is None:
        raise IdempotencyKeyReused(
            f"idempotencyKey {key!r} was already used for a different {operation} request. "
            "Use a new key for a new request; reuse a key only to retry the same request."
        )
    return existing.response


async def record(
    tx: AsyncSession, caller: Caller, operation: str, key: str | None, response: dict[str, Any]
) -> None:
    """Store the first result on the row `reserve_or_replay` inserted (one UPDATE, no read)."""
    if key is None:
        return
    done = await tx.exec(
        update(IdempotencyRecord)
        .where(
            col(IdempotencyRecord.user_id) == caller.user_id,
            col(IdempotencyRecord.operation) == operation,
            col(IdempotencyRecord.key) == key,
        )
        .values(response=response)
    )
    assert done.rowcount == 1, "record() without reserve_or_replay()"


class Outcome:
    """Base of a keyed mutation's result dataclass: what it stores, and how it comes back."""

    def dump(self) -> dict[str, Any]:
        return dump(self)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Any:
        return load(cls, data)


@dataclass
class Keyed(Generic[T]):
    """A keyed mutation under way: `replayed` is the first result when this is a retry."""

    tx: AsyncSession
    caller: Caller
    operation: str
    key: str | None
    replayed: T | None

    async def record(self, outcome: T) -> T:
        await record(self.tx, self.caller, self.operation, self.key, dump(outcome))
        return outcome


async def begin(
    tx: AsyncSession,
    caller: Caller,
    operation: str,
    key: str | None,
    request: dict[str, Any],
    outcome_type: type[T],
) -> Keyed[T]:
    """Reserve `key` for this request, or find the first result to replay (see the module)."""
    stored = await reserve_or_replay(tx, caller, operation, key, request)
    replayed = load(outcome_type, stored) if stored is not None else None
    return Keyed(tx, caller, operation, key, replayed)


def dump(outcome: Any) -> dict[str, Any]:
    """A dataclass of rows (a row, a list of rows, None, or a plain value per field) as JSON,
    keyed by the camelCase field names."""

    def one(value: Any) -> Any:
        if isinstance(value, SQLModel):
            return snapshot(value)
        if isinstance(value, list):
            return [one(v) for v in value]
        return value

    return {_stored(f.name): one(getattr(outcome, f.name)) for f in dataclasses.fields(outcome)}


def load(outcome_type: type[T], data: dict[str, Any]) -> T:
    """The inverse of `dump`, by the dataclass's field types."""
    values = {}
    for name, (row_type, many) in _row_fields(outcome_type).items():  # type: ignore[arg-type]
        value = data[_stored(name)]
        if row_type is not None and value is not None:
            value = (
                [row_type.model_validate(v) for v in value]
                if many
                else row_type.model_validate(value)
            )
        values[name] = value
    return outcome_type(**values)


@functools.cache
def _stored(field: str) -> str:
    """A field's key in the stored response: camelCase, as the GraphQL result names it."""
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


@functools.cache
def _row_fields(outcome_type: type) -> dict[str, tuple[type[SQLModel] | None, bool]]:
    """field -> (the row model it holds, or None for a plain value; whether it is a list)."""
    hints = typing.get_type_hints(outcome_type)
    fields: dict[str, tuple[type[SQLModel] | None, bool]] = {}
    for field in dataclasses.fields(outcome_type):
        hint, many = hints[field.name], False
        if typing.get_origin(hint) is list:
            (hint,), many = typing.get_args(hint), True
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        row = hint if isinstance(hint, type) and issubclass(hint, SQLModel) else None
        fields[field.name] = (row, many)
    return fields
