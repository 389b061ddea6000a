"""What a room has committed, read straight from the database with asyncpg (bypassing the app),
for the tests that hold the API's answers to the rows."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support import dbutil


async def db_tasks(url: str, room_id: str) -> list[dict[str, Any]]:
    rows = await dbutil.fetch(
        url,
        "SELECT * FROM tasks WHERE chatroom_id = $1 ORDER BY created_at, id",
        uuid.UUID(room_id),
    )
    return [dict(r) for r in rows]


async def db_task(url: str, task_id: str) -> dict[str, Any]:
    row = await dbutil.fetchrow(url, "SELECT * FROM tasks WHERE id = $1", uuid.UUID(task_id))
    assert row is not None, task_id
    return dict(row)


async def db_messages(url: str, room_id: str) -> list[dict[str, Any]]:
    rows = await dbutil.fetch(
        url, "SELECT * FROM messages WHERE chatroom_id = $1 ORDER BY seq", uuid.UUID(room_id)
    )
    return [dict(r) for r in rows]


async def db_statuses(url: str, room_id: str) -> dict[str, str]:
    """Each participant's status, by role (the database's lower-case values)."""
    rows = await dbutil.fetch(
        url, "SELECT role, status FROM participants WHERE chatroom_id = $1", uuid.UUID(room_id)
    )
    return {r["role"]: r["status"] for r in rows}


async def db_events(url: str, room_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
    rows = await dbutil.fetch(
        url,
        "SELECT seq, kind, payload FROM room_events WHERE chatroom_id = $1 AND seq > $2"
        " ORDER BY seq",
        uuid.UUID(room_id),
        after_seq,
    )
    return [dict(r) for r in rows]


async def db_event_seqs(url: str, room_id: str) -> list[int]:
    return [int(e["seq"]) for e in await db_events(url, room_id)]


async def db_room_state(url: str, room_id: str) -> dict[str, Any]:
    """Everything of one room, as committed (for before/after comparisons)."""
    rid = uuid.UUID(room_id)
    room = await dbutil.fetchrow(url, "SELECT * FROM chatrooms WHERE id = $1", rid)
    assert room is not None
    participants = await dbutil.fetch(
        url, "SELECT * FROM participants WHERE chatroom_id = $1 ORDER BY role", rid
    )
    return {
        "room": dict(room),
        "tasks": await db_tasks(url, room_id),
        "messages": await db_messages(url, room_id),
        "participants": [dict(r) for r in participants],
        "events": await db_event_seqs(url, room_id),
    }
