"""The floor the server is measured against: each step of the pair loop as the fewest
statements that do its job, straight over asyncpg. Written for the schema, not copied from the
app: whatever the app sends, this is what the job needs.

Every step is one transaction of two statements:

1. authenticate and lock: the token's live session joined to the room it may write, the room
   row locked (it orders the room's writers and holds its counters);
2. one CTE that makes every row change of the step, appends its room events (with the changed
   rows as payload, numbered from the locked counter), moves the room's counters and calls
   pg_notify, so the commit announces it.

Rows that point at each other (a message and the task it starts) get their ids here, so both
INSERTs sit in the same statement; the foreign keys are checked at its end.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

NOTIFY_CHANNEL = "chatroom_events"  # the product's channel (chatroom/db/notify.py)
LEASE_SECONDS = 4 * 3600  # CHATROOM_TASK_LEASE_SECONDS' default (the value is only stored)
STATEMENTS_PER_STEP = 2

Record = Callable[[str, float, float], None]


class Stop(Exception):
    """The measuring window closed: the pair stops before its next step."""


_LOCK = """
SELECT r.id, r.last_message_seq, r.last_event_seq, r.entry_point
FROM sessions s JOIN chatrooms r ON r.owner_id = s.user_id
WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND r.id = $2
FOR UPDATE OF r
"""

# $1 room, $2 message id, $3 task id, $4 message seq, $5 event seq before, $6 content,
# $7 entry point
_SEND_MESSAGE = """
WITH m AS (
  INSERT INTO messages (id, chatroom_id, seq, sender_role, target_role, content, type, task_id,
                        created_at)
  VALUES ($2, $1, $4, 'user', $7, $6, 'message', $3, now()) RETURNING *),
t AS (
  INSERT INTO tasks (id, chatroom_id, status, content, created_by, source_message_id,
                     origin_message_id, attempt, created_at, updated_at)
  VALUES ($3, $1, 'pending', $6, 'user', $2, $2, 0, now(), now()) RETURNING *),
e AS (
  INSERT INTO room_events (chatroom_id, seq, kind, payload, created_at)
  SELECT $1, $5 + 1, 'message_created', jsonb_build_object('message', to_jsonb(m)), now() FROM m
  UNION ALL
  SELECT $1, $5 + 2, 'task_created', jsonb_build_object('task', to_jsonb(t)), now() FROM t),
r AS (UPDATE chatrooms SET last_message_seq = $4, last_event_seq = $5 + 2 WHERE id = $1)
SELECT pg_notify('chatroom_events', $1::text || ':' || ($5 + 2))
"""

# $1 room, $2 task id, $3 role, $4 event seq before, $5 lease seconds
_CLAIM = """
WITH t AS (
  UPDATE tasks SET status = 'in_progress', assigned_to = $3, attempt = attempt + 1,
    updated_at = now(), started_at = now(),
    lease_expires_at = now() + make_interval(secs => $5)
  WHERE id = $2 AND chatroom_id = $1 AND status = 'pending'
    AND (assigned_to = $3 OR assigned_to IS NULL)
  RETURNING *),
m AS (
  UPDATE messages SET claimed_by_role = $3 FROM t WHERE messages.id = t.source_message_id
  RETURNING messages.id),
p AS (
  UPDATE participants SET status = 'active', last_seen_at = now(), updated_at = now()
  WHERE chatroom_id = $1 AND role = $3 RETURNING *),
e AS (
  INSERT INTO room_events (chatroom_id, seq, kind, payload, created_at)
  SELECT $1, $4 + 1, 'task_updated', jsonb_build_object('task', to_jsonb(t)), now() FROM t
  UNION ALL
  SELECT $1, $4 + 2, 'participant_updated', jsonb_build_object('participant', to_jsonb(p)),
    now() FROM p),
r AS (UPDATE chatrooms SET last_event_seq = $4 + 2 WHERE id = $1)
SELECT (SELECT count(*) FROM t) AS claimed,
  pg_notify('chatroom_events', $1::text || ':' || ($4 + 2))
"""

# $1 room, $2 sender, $3 target (NULL for the user), $4 message id, $5 new task id (NULL for
# the user), $6 message seq, $7 event seq before, $8 content. A handoff to the user starts no
# task; one to an agent starts a pending task assigned to it. (Promoting a queued task when
# the baton frees is left out: the loop never queues, and the app's bench never sees one.)
_HANDOFF = """
WITH done AS (
  UPDATE tasks SET status = 'completed', updated_at = now(), completed_at = now(),
    lease_expires_at = NULL
  WHERE chatroom_id = $1 AND status = 'in_progress' AND assigned_to = $2 RETURNING *),
m AS (
  INSERT INTO messages (id, chatroom_id, seq, sender_role, target_role, content, type, task_id,
                        created_at)
  SELECT $4, $1, $6, $2, coalesce($3, 'user'), $8, 'handoff', $5, now() FROM done RETURNING *),
t AS (
  INSERT INTO tasks (id, chatroom_id, status, content, created_by, assigned_to,
                     source_message_id, origin_message_id, attempt, created_at, updated_at)
  SELECT $5, $1, 'pending', $8, $2, $3, $4, done.origin_message_id, 0, now(), now()
  FROM done WHERE $5::uuid IS NOT NULL RETURNING *),
p AS (
  UPDATE participants SET status = 'waiting', updated_at = now()
  WHERE chatroom_id = $1 AND role = $2 AND EXISTS (SELECT 1 FROM done) RETURNING *),
e AS (
  INSERT INTO room_events (chatroom_id, seq, kind, payload, created_at)
  SELECT $1, $7 + 1, 'task_updated', jsonb_build_object('task', to_jsonb(done)), now() FROM done
  UNION ALL
  SELECT $1, $7 + 2, 'message_created', jsonb_build_object('message', to_jsonb(m)), now() FROM m
  UNION ALL
  SELECT $1, $7 + 3, 'participant_updated', jsonb_build_object('participant', to_jsonb(p)),
    now() FROM p
  UNION ALL
  SELECT $1, $7 + 4, 'task_created', jsonb_build_object('task', to_jsonb(t)), now() FROM t),
r AS (
  UPDATE chatrooms SET last_message_seq = $6,
    last_event_seq = $7 + 3 + (CASE WHEN $5::uuid IS NULL THEN 0 ELSE 1 END)
  WHERE id = $1)
SELECT (SELECT count(*) FROM done) AS done,
  pg_notify('chatroom_events',
            $1::text || ':' || ($7 + 3 + (CASE WHEN $5::uuid IS NULL THEN 0 ELSE 1 END)))
"""


class Connections:
    """A fixed set of connections handed out in turn (as the app's pool does, no reset query)."""

    def __init__(self, conns: list[asyncpg.Connection]) -> None:
        self.conns = conns
        self.free: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        for conn in conns:
            self.free.put_nowait(conn)

    @classmethod
    async def open(cls, dsn: str, n: int) -> Connections:
        return cls(list(await asyncio.gather(*(asyncpg.connect(dsn) for _ in range(n)))))

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.conns))


class MinimalPair:
    """The pair loop (message, claim, handoff, claim, handoff to the user), two statements
    a step."""

    def __init__(self, pool: Connections, token: str, room_id: str) -> None:
        self.pool = pool
        self.token_hash = hashlib.sha256(token.encode()).hexdigest()
        self.room_id = uuid.UUID(room_id)
        self.n = 0

    async def _step(
        self, write: Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[Any]]
    ) -> Any:
        conn = await self.pool.free.get()
        try:
            async with conn.transaction():
                room = await conn.fetchrow(_LOCK, self.token_hash, self.room_id)
                assert room is not None, "token refused or room not visible"
                return await write(conn, room)
        finally:
            self.pool.free.put_nowait(conn)

    async def send_message(self, content: str) -> uuid.UUID:
        task_id = uuid.uuid4()

        async def write(conn: asyncpg.Connection, room: asyncpg.Record) -> None:
            await conn.execute(
                _SEND_MESSAGE,
                self.room_id,
                uuid.uuid4(),
                task_id,
                room["last_message_seq"] + 1,
                room["last_event_seq"],
                content,
                room["entry_point"],
            )

        await self._step(write)
        return task_id

    async def claim(self, task_id: uuid.UUID, role: str) -> None:
        async def write(conn: asyncpg.Connection, room: asyncpg.Record) -> None:
            row = await conn.fetchrow(
                _CLAIM, self.room_id, task_id, role, room["last_event_seq"], LEASE_SECONDS
            )
            assert row is not None and row["claimed"] == 1, "claim refused"

        await self._step(write)

    async def handoff(self, sender: str, target: str | None, content: str) -> uuid.UUID | None:
        new_id = uuid.uuid4() if target is not None else None

        async def write(conn: asyncpg.Connection, room: asyncpg.Record) -> None:
            row = await conn.fetchrow(
                _HANDOFF,
                self.room_id,
                sender,
                target,
                uuid.uuid4(),
                new_id,
                room["last_message_seq"] + 1,
                room["last_event_seq"],
                content,
            )
            assert row is not None and row["done"] == 1, "handoff refused"

        await self._step(write)
        return new_id

    async def cycle(self, record: Record, stop_at: float) -> None:
        self.n += 1
        n = self.n

        async def timed(kind: str, work: Callable[[], Awaitable[Any]]) -> Any:
            if time.perf_counter() >= stop_at:
                raise Stop
            started = time.perf_counter()
            result = await work()
            record(kind, started, time.perf_counter())
            return result

        task_id = await timed("message", lambda: self.send_message(f"request {n}"))
        await timed("claim", lambda: self.claim(task_id, "builder"))
        task_id = await timed(
            "handoff", lambda: self.handoff("builder", "reviewer", f"builder done with {n}")
        )
        await timed("claim", lambda: self.claim(task_id, "reviewer"))
        await timed("handoff", lambda: self.handoff("reviewer", None, f"reviewer done with {n}"))

    async def aclose(self) -> None:
        pass
