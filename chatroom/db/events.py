"""Append room events in the caller's transaction, and announce them with pg_notify.

A notification carries ids only ("<room id>:<seq>") and is delivered by PostgreSQL only if the
transaction commits, so nothing is ever announced that did not happen. Subscribers treat it as a
wake-up and re-read the table from their cursor."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import Chatroom, EventKind, RoomEvent

NOTIFY_CHANNEL = "chatroom_events"


def snapshot(row: SQLModel) -> dict[str, Any]:
    """A JSON-safe copy of a row as it is now (replays show each change as it happened)."""
    return row.model_dump(mode="json")


async def append_event(
    tx: AsyncSession, room: Chatroom, kind: EventKind, payload: dict[str, Any]
) -> RoomEvent:
    """The room row must be locked by the caller: its counter gives the gapless seq."""
    room.last_event_seq += 1
    tx.add(room)
    event = RoomEvent(
        chatroom_id=room.id, seq=room.last_event_seq, kind=kind.value, payload=payload
    )
    tx.add(event)
    await tx.flush()
    connection = await tx.connection()
    await connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, f"{room.id}:{event.seq}")))
    return event
