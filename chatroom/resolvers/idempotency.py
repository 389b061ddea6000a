"""Idempotency keys: a retry with the same key gets the first result; a different input with
the same key is refused. The key is reserved by an INSERT in the mutation's own transaction, so
a concurrent retry blocks on the unique key until the first commits (then replays it) or rolls
back (then runs itself). A refused mutation rolls back and leaves no record."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import IdempotencyRecord
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import IdempotencyKeyReused


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
    if key is None:
        return
    record_row = await tx.get(IdempotencyRecord, (caller.user_id, operation, key))
    assert record_row is not None, "record() without reserve_or_replay()"
    record_row.response = response
    tx.add(record_row)
    await tx.flush()
