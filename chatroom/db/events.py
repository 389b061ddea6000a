"""Room events: appended in the caller's transaction and announced with pg_notify.

`append_event` numbers the event (the caller holds the room row's lock, so the counter is
gapless) and queues it on the session; `write_pending_events` writes the whole batch just
before the transaction commits, in ONE statement: the events (one multi-row INSERT), the
rooms' counters and one notification per room. The counters (`bump`, `set_room`) are set on
the room object without the ORM seeing a change, so no flush re-issues `UPDATE chatrooms` for
them; the final statement writes them once. The notification's format is chatroom/db/notify.py's;
subscribers treat it as a wake-up and re-read the table from their cursor."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db import driver, rows
from chatroom.db.models import Chatroom, EventKind, RoomEvent, utcnow
from chatroom.db.notify import NOTIFY_CHANNEL, room_payload

# Tables, not mapped classes: Core statements then skip the ORM's DML plugin.
EVENTS = RoomEvent.__table__  # type: ignore[attr-defined]
ROOMS = Chatroom.__table__  # type: ignore[attr-defined]

_PENDING = "chatroom.pending_events"
_ROOMS = "chatroom.counted_rooms"  # room id -> the locked Chatroom whose counters moved
COUNTERS = ("last_event_seq", "last_message_seq", "next_queue_position")
# The room columns the final statement writes: the counters, and the newest classified origin.
ROOM_COLUMNS = (*COUNTERS, "last_origin_message_id")


def snapshot(row: SQLModel) -> dict[str, Any]:
    """A JSON-safe copy of a row as it is now (replays show each change as it happened)."""
    return row.model_dump(mode="json")


def set_room(tx: AsyncSession, room: Chatroom, column: str, value: Any) -> Any:
    """Set one of ROOM_COLUMNS on the locked room; written by the commit's final statement
    (the ORM does not see the change, so flushes leave the room row alone)."""
    assert column in ROOM_COLUMNS, column
    set_committed_value(room, column, value)
    tx.info.setdefault(_ROOMS, {})[room.id] = room
    return value


def bump(tx: AsyncSession, room: Chatroom, counter: str) -> int:
    """Add one to a counter of the locked room and return it (see `set_room`)."""
    assert counter in COUNTERS, counter
    return set_room(tx, room, counter, getattr(room, counter) + 1)


def append_event(tx: AsyncSession, room: Chatroom, kind: EventKind, payload: dict[str, Any]) -> int:
    """Queue one event in this transaction; returns its seq. The room row must be locked."""
    seq = bump(tx, room, "last_event_seq")
    pending: list[dict[str, Any]] = tx.info.setdefault(_PENDING, [])
    pending.append(
        {
            "chatroom_id": room.id,
            "seq": seq,
            "kind": kind.value,
            "payload": payload,
            "created_at": utcnow(),
        }
    )
    return seq


def refresh_pending(tx: AsyncSession, key: str, row: SQLModel) -> None:
    """Re-snapshot `row` in this transaction's queued events (e.g. a message linked to the task
    it created a moment later): an event shows the state its transaction committed."""
    fresh = snapshot(row)
    for event in tx.info.get(_PENDING, ()):
        current = event["payload"].get(key)
        if current is not None and current.get("id") == fresh["id"]:
            event["payload"][key] = fresh


# The commit's final statement, one fixed text for any batch: the events, the rooms' counters
# and the notifications travel as arrays, so the statement is prepared once per connection and
# never built or compiled again (building it per call, as Core, cost more CPU than the SQL).
# driver.execute flushes the ORM first: a new room must exist before its events.
_WRITE_PENDING = """
WITH events AS (
    INSERT INTO room_events (chatroom_id, seq, kind, payload, created_at)
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[]::jsonb[],
                         $5::timestamptz[])
), rooms AS (
    UPDATE chatrooms AS room
       SET last_event_seq = moved.last_event_seq, last_message_seq = moved.last_message_seq,
           next_queue_position = moved.next_queue_position,
           last_origin_message_id = moved.last_origin_message_id
      FROM unnest($6::uuid[], $7::bigint[], $8::int[], $9::int[], $10::uuid[])
           AS moved (id, last_event_seq, last_message_seq, next_queue_position,
                     last_origin_message_id)
     WHERE room.id = moved.id
)
SELECT pg_notify($11, payload) FROM unnest($12::text[]) AS payload
"""
assert ROOM_COLUMNS == (
    "last_event_seq",
    "last_message_seq",
    "next_queue_position",
    "last_origin_message_id",
), "the final statement names these columns in this order"


async def write_pending_events(tx: AsyncSession) -> list[RoomEvent]:
    """Write the queued events, the rooms' counters and the notifications in one statement;
    called by the transaction before commit. Returns the events written (for the transaction
    to hand to this process's feeds once it has committed)."""
    pending: list[dict[str, Any]] = tx.info.pop(_PENDING, None) or []
    rooms: dict[Any, Chatroom] = tx.info.pop(_ROOMS, None) or {}
    if not pending and not rooms:
        return []
    newest: dict[Any, int] = {}
    for event in pending:
        newest[event["chatroom_id"]] = max(event["seq"], newest.get(event["chatroom_id"], 0))
    moved = list(rooms.values())
    parameters = (
        [e["chatroom_id"] for e in pending],
        [e["seq"] for e in pending],
        [e["kind"] for e in pending],
        [json.dumps(e["payload"]) for e in pending],
        [e["created_at"] for e in pending],
        [room.id for room in moved],
        *([getattr(room, name) for room in moved] for name in ROOM_COLUMNS),
        NOTIFY_CHANNEL,
        [room_payload(room_id, seq) for room_id, seq in newest.items()],
    )
    await driver.execute(tx, _WRITE_PENDING, *parameters)
    return [rows.build(RoomEvent, event) for event in pending]
