"""Room events: appended in the caller's transaction and announced with pg_notify.

`append_event` numbers the event (the caller holds the room row's lock, so the counter is
gapless) and queues it on the session; `write_pending_events` writes the whole batch just
before the transaction commits: one multi-row INSERT and one notification per room, instead of
three statements per event. The notification's format is chatroom/db/notify.py's;
subscribers treat it as a wake-up and re-read the table from their cursor."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import Chatroom, EventKind, RoomEvent, utcnow
from chatroom.db.notify import notify, room_payload

_PENDING = "chatroom.pending_events"


def snapshot(row: SQLModel) -> dict[str, Any]:
    """A JSON-safe copy of a row as it is now (replays show each change as it happened)."""
    return row.model_dump(mode="json")


def append_event(tx: AsyncSession, room: Chatroom, kind: EventKind, payload: dict[str, Any]) -> int:
    """Queue one event in this transaction; returns its seq. The room row must be locked."""
    room.last_event_seq += 1
    tx.add(room)
    pending: list[dict[str, Any]] = tx.info.setdefault(_PENDING, [])
    pending.append(
        {
            "chatroom_id": room.id,
            "seq": room.last_event_seq,
            "kind": kind.value,
            "payload": payload,
            "created_at": utcnow(),
        }
    )
    return room.last_event_seq


def refresh_pending(tx: AsyncSession, key: str, row: SQLModel) -> None:
    """Re-snapshot `row` in this transaction's queued events (e.g. a message linked to the task
    it created a moment later): an event shows the state its transaction committed."""
    fresh = snapshot(row)
    for event in tx.info.get(_PENDING, ()):
        current = event["payload"].get(key)
        if current is not None and current.get("id") == fresh["id"]:
            event["payload"][key] = fresh


async def write_pending_events(tx: AsyncSession) -> None:
    """Write the queued events and announce them; called by the transaction before commit."""
    pending: list[dict[str, Any]] | None = tx.info.pop(_PENDING, None)
    if not pending:
        return
    await tx.flush()  # the rooms' counters
    connection = await tx.connection()
    await connection.execute(insert(RoomEvent).values(pending))
    newest: dict[Any, int] = {}
    for event in pending:
        newest[event["chatroom_id"]] = max(event["seq"], newest.get(event["chatroom_id"], 0))
    for room_id, seq in newest.items():
        await connection.execute(notify(room_payload(room_id, seq)))
