"""What a room has committed, read straight from the database with asyncpg (bypassing the app),
for the tests that hold the API's answers to the rows: its tasks, messages, participants,
events, agent slots, and whether a session's token is revoked."""

from __future__ import annotations

import uuid
from typing import Any

from chatroom.resolvers.auth import hash_token
from tests.support import dbutil


async def _room_rows(url: str, table: str, room_id: str, order: str) -> list[dict[str, Any]]:
    """Every row of `table` (a constant of this module) that belongs to the room, in `order`."""
    rows = await dbutil.fetch(
        url, f"SELECT * FROM {table} WHERE chatroom_id = $1 ORDER BY {order}", uuid.UUID(room_id)
    )
    return [dict(r) for r in rows]


async def _row(url: str, table: str, row_id: str) -> dict[str, Any]:
    """The row of `table` (a constant of this module) with that id; it must exist."""
    row = await dbutil.fetchrow(url, f"SELECT * FROM {table} WHERE id = $1", uuid.UUID(row_id))
    assert row is not None, (table, row_id)
    return dict(row)


async def db_room_row(url: str, room_id: str) -> dict[str, Any]:
    """The room's chatrooms row (its counters: last_event_seq, last_message_seq, ...)."""
    return await _row(url, "chatrooms", room_id)


async def db_tasks(url: str, room_id: str) -> list[dict[str, Any]]:
    return await _room_rows(url, "tasks", room_id, "created_at, id")


async def db_task(url: str, task_id: str) -> dict[str, Any]:
    return await _row(url, "tasks", task_id)


async def db_messages(url: str, room_id: str) -> list[dict[str, Any]]:
    return await _room_rows(url, "messages", room_id, "seq")


async def db_slots(url: str, room_id: str) -> list[dict[str, Any]]:
    """The room's agent slots, by role."""
    return await _room_rows(url, "agent_slots", room_id, "role")


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
    return {
        "room": await db_room_row(url, room_id),
        "tasks": await db_tasks(url, room_id),
        "messages": await db_messages(url, room_id),
        "participants": await _room_rows(url, "participants", room_id, "role"),
        "events": await db_event_seqs(url, room_id),
    }


async def db_token_revoked(url: str, token: str) -> bool:
    """Whether the session of `token` (it must exist) has been revoked."""
    row = await dbutil.fetchrow(
        url, "SELECT revoked_at FROM sessions WHERE token_hash = $1", hash_token(token)
    )
    assert row is not None
    return row["revoked_at"] is not None
