"""Handoff and claim throughput through the whole GraphQL HTTP stack, against the same
transactions sent straight to PostgreSQL with asyncpg.

    .venv/bin/python -m bench.throughput [--quick] [--pairs 1,10,50] [--seconds 8]

Each agent pair has its own room and its own token, and loops with no think time:
user message -> builder claims -> builder hands off to reviewer -> reviewer claims ->
reviewer hands off to the user. Every step is one mutation: one HTTP request on the pair's own
keep-alive connection (httpx), to a real uvicorn running the app with the rate limit off.

The baseline runs the same loop as plain asyncpg transactions that send the statements the app
sends (the same statements, in the same order, the same number: counted here from the app's
own SQL with SQLAlchemy's before_cursor_execute event and checked against the direct version):
lock the room row, update the task, insert the message with the next seq, insert the new task,
update the participant, append the room events and pg_notify, one transaction per step. It
uses as many connections as the app's pool may open (20), so both sides get the same database
concurrency; what is left between the two is the app's own cost (HTTP, GraphQL, the ORM).

Ops/s counts the steps completed inside the measuring window (after a warm-up); latencies
are per step, from sending the request to having the parsed answer.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.common import (
    CLAIM_TASK,
    SEND_HANDOFF,
    SEND_MESSAGE,
    Client,
    CpuMeter,
    CpuShares,
    Row,
    Server,
    bench_database,
    database_description,
    database_name,
    format_table,
    machine,
    new_owner,
    new_room,
    percentile,
    raise_nofile,
    summary_table,
)

KINDS = ("message", "claim", "handoff")
APP_POOL = 20  # chatroom/schema/app.py: create_engine(pool_size=10, max_overflow=10)
LEASE = timedelta(hours=4)  # CHATROOM_TASK_LEASE_SECONDS' default (the value is only stored)
HANDOFF_SHARE_TARGET = 0.40
HANDOFF_P99_TARGET = 0.050

Record = Callable[[str, float, float], None]


class Stop(Exception):
    """The measuring window closed: the pair stops before its next step."""


# --- the pair through GraphQL -------------------------------------------------------------------


class GraphQLPair:
    def __init__(self, url: str, token: str, room_id: str) -> None:
        self.client = Client(url, token)
        self.room_id = room_id
        self.n = 0

    async def step(self, record: Record, kind: str, document: str, **input: Any) -> Any:
        started = time.perf_counter()
        data = await self.client.execute(document, input={"chatroomId": self.room_id, **input})
        record(kind, started, time.perf_counter())
        return data

    async def cycle(self, record: Record, stop_at: float) -> None:
        self.n += 1
        steps = self._steps(record)
        for step in steps:
            if time.perf_counter() >= stop_at:
                raise Stop
            await step()

    def _steps(self, record: Record) -> list[Callable[[], Awaitable[None]]]:
        task: dict[str, str] = {}

        async def message() -> None:
            data = await self.step(record, "message", SEND_MESSAGE, content=f"request {self.n}")
            assert data["sendMessage"]["task"]["status"] == "PENDING", data
            task["id"] = data["sendMessage"]["task"]["id"]

        def claim(role: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                data = await self.step(record, "claim", CLAIM_TASK, taskId=task["id"], role=role)
                assert data["claimTask"]["success"], data

            return run

        def handoff(sender: str, target: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                data = await self.step(
                    record,
                    "handoff",
                    SEND_HANDOFF,
                    senderRole=sender,
                    targetRole=target,
                    content=f"{sender} done with {self.n}",
                )
                new = data["sendHandoff"]["newTask"]
                if target != "user":
                    task["id"] = new["id"]

            return run

        return [
            message,
            claim("builder"),
            handoff("builder", "reviewer"),
            claim("reviewer"),
            handoff("reviewer", "user"),
        ]

    async def aclose(self) -> None:
        await self.client.aclose()


# --- the same transactions, straight to PostgreSQL ----------------------------------------------

_SESSION = (
    "SELECT id, user_id, token_hash, device_name, scope_chatroom_id, scope_role, created_at, "
    "last_used_at, expires_at, revoked_at FROM sessions WHERE token_hash = $1"
)
_ROOM_FOR_UPDATE = (
    "SELECT id, owner_id, name, status, team_id, team_name, team_roles, entry_point, "
    "next_queue_position, last_message_seq, last_event_seq, last_origin_message_id, created_at, "
    "updated_at FROM chatrooms WHERE id = $1 AND owner_id = $2 FOR UPDATE"
)
_TASK_COLUMNS = (
    "id, chatroom_id, status, content, created_by, assigned_to, source_message_id, "
    "origin_message_id, queue_position, attempt, created_at, updated_at, started_at, "
    "completed_at, lease_expires_at"
)
_ACTIVE_TASK = (
    f"SELECT {_TASK_COLUMNS} FROM tasks WHERE chatroom_id = $1 AND status IN ($2, $3) FOR UPDATE"
)
_TASK_FOR_UPDATE = (
    f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = $1 AND chatroom_id = $2 FOR UPDATE"
)
_NEXT_QUEUED = (
    f"SELECT {_TASK_COLUMNS} FROM tasks WHERE chatroom_id = $1 AND status = $2 "
    "ORDER BY queue_position LIMIT $3 FOR UPDATE"
)
_MESSAGE = (
    "SELECT id, chatroom_id, seq, sender_role, target_role, content, type, classification, "
    "follows_message_id, effective_classification, task_id, claimed_by_role, created_at "
    "FROM messages WHERE id = $1"
)
_PARTICIPANT = (
    "SELECT id, chatroom_id, role, status, last_seen_at, waiter_id, updated_at "
    "FROM participants WHERE chatroom_id = $1 AND role = $2"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (id, chatroom_id, seq, sender_role, target_role, content, type, "
    "classification, follows_message_id, effective_classification, task_id, claimed_by_role, "
    "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
)
_INSERT_TASK = (
    f"INSERT INTO tasks ({_TASK_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)
_ROOM_MESSAGE_SEQ = "UPDATE chatrooms SET last_message_seq = $1 WHERE id = $2"
_ROOM_BOTH_SEQS = "UPDATE chatrooms SET last_message_seq = $1, last_event_seq = $2 WHERE id = $3"
_ROOM_EVENT_SEQ = "UPDATE chatrooms SET last_event_seq = $1 WHERE id = $2"
_MESSAGE_TASK = "UPDATE messages SET task_id = $1 WHERE id = $2"
_MESSAGE_CLAIMED = "UPDATE messages SET claimed_by_role = $1 WHERE id = $2"
_TASK_STARTED = (
    "UPDATE tasks SET status = $1, assigned_to = $2, attempt = $3, updated_at = $4, "
    "started_at = $5, lease_expires_at = $6 WHERE id = $7"
)
_TASK_COMPLETED = (
    "UPDATE tasks SET status = $1, updated_at = $2, completed_at = $3, lease_expires_at = $4 "
    "WHERE id = $5"
)
_PARTICIPANT_ACTIVE = (
    "UPDATE participants SET status = $1, last_seen_at = $2, updated_at = $3 WHERE id = $4"
)
_PARTICIPANT_WAITING = "UPDATE participants SET status = $1, updated_at = $2 WHERE id = $3"
_NOTIFY = "SELECT pg_notify($1, $2)"
NOTIFY_CHANNEL = "chatroom_events"  # chatroom/db/events.py


def _insert_events(n: int) -> str:
    rows = ", ".join(
        f"(${5 * i + 1}, ${5 * i + 2}, ${5 * i + 3}, ${5 * i + 4}, ${5 * i + 5})" for i in range(n)
    )
    return f"INSERT INTO room_events (chatroom_id, seq, kind, payload, created_at) VALUES {rows}"


_INSERT_EVENTS = {n: _insert_events(n) for n in range(1, 6)}


class Connections:
    """A fixed set of connections handed out in turn (no reset query on release: the app's
    pool does not send one either)."""

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


@dataclass
class DirectTx:
    """One transaction's statements, counted (to check the count against the app's)."""

    conn: asyncpg.Connection
    room_id: uuid.UUID
    statements: int = 0
    events: list[tuple[Any, ...]] = field(default_factory=list)

    async def row(self, sql: str, *args: Any) -> asyncpg.Record | None:
        self.statements += 1
        return await self.conn.fetchrow(sql, *args)

    async def run(self, sql: str, *args: Any) -> None:
        self.statements += 1
        await self.conn.execute(sql, *args)

    def event(self, room: dict[str, Any], kind: str, key: str, row: dict[str, Any]) -> None:
        """Number the event under the room lock; written in one INSERT before commit."""
        room["last_event_seq"] += 1
        payload = json.dumps({key: row}, default=str)
        self.events.append((self.room_id, room["last_event_seq"], kind, payload, _now()))

    async def write_events(self, room: dict[str, Any]) -> None:
        args = [value for event in self.events for value in event]
        await self.run(_INSERT_EVENTS[len(self.events)], *args)
        await self.row(_NOTIFY, NOTIFY_CHANNEL, f"{self.room_id}:{room['last_event_seq']}")


def _now() -> datetime:
    return datetime.now(UTC)


class DirectPair:
    """The pair's loop as asyncpg transactions (see the module docstring)."""

    def __init__(self, pool: Connections, token: str, room_id: str) -> None:
        self.pool = pool
        self.token_hash = hashlib.sha256(token.encode()).hexdigest()
        self.room_id = uuid.UUID(room_id)
        self.n = 0
        self.counts: dict[str, int] = {}

    async def transaction(self, name: str, work: Callable[[DirectTx], Awaitable[Any]]) -> Any:
        conn = await self.pool.free.get()
        try:
            tx = DirectTx(conn, self.room_id)
            async with conn.transaction():
                result = await work(tx)
            self.counts[name] = tx.statements
            return result
        finally:
            self.pool.free.put_nowait(conn)

    async def _room(self, tx: DirectTx) -> dict[str, Any]:
        """Authenticate (as the app does on every call), then lock the room row."""
        session = await tx.row(_SESSION, self.token_hash)
        assert session is not None and session["revoked_at"] is None
        room = await tx.row(_ROOM_FOR_UPDATE, self.room_id, session["user_id"])
        assert room is not None
        return dict(room)

    async def _active(self, tx: DirectTx) -> dict[str, Any] | None:
        row = await tx.row(_ACTIVE_TASK, self.room_id, "pending", "in_progress")
        return dict(row) if row else None

    async def send_message(self, tx: DirectTx, content: str) -> uuid.UUID:
        room = await self._room(tx)
        await self._active(tx)  # a lapsed lease would be expired here
        room["last_message_seq"] += 1
        await tx.run(_ROOM_MESSAGE_SEQ, room["last_message_seq"], self.room_id)
        message = self._message(room, "user", room["entry_point"], content, "message")
        await tx.run(_INSERT_MESSAGE, *message.values())
        tx.event(room, "message_created", "message", message)
        await tx.run(_ROOM_EVENT_SEQ, room["last_event_seq"], self.room_id)
        busy = await self._active(tx) is not None
        assert not busy
        task = self._task("pending", content, "user", None, message["id"], message["id"])
        await tx.run(_INSERT_TASK, *task.values())
        await tx.run(_MESSAGE_TASK, task["id"], message["id"])
        tx.event(room, "task_created", "task", task)
        await tx.run(_ROOM_EVENT_SEQ, room["last_event_seq"], self.room_id)
        await tx.write_events(room)
        return task["id"]  # type: ignore[no-any-return]

    async def claim(self, tx: DirectTx, task_id: uuid.UUID, role: str) -> None:
        room = await self._room(tx)
        await self._active(tx)
        row = await tx.row(_TASK_FOR_UPDATE, task_id, self.room_id)
        assert row is not None and row["status"] == "pending"
        task = dict(row)
        assert task["assigned_to"] in (role, None)
        now = _now()
        task.update(
            status="in_progress",
            assigned_to=role,
            attempt=task["attempt"] + 1,
            updated_at=now,
            started_at=now,
            lease_expires_at=now + LEASE,
        )
        await tx.run(
            _TASK_STARTED,
            "in_progress",
            role,
            task["attempt"],
            now,
            now,
            task["lease_expires_at"],
            task_id,
        )
        tx.event(room, "task_updated", "task", task)
        await tx.run(_ROOM_EVENT_SEQ, room["last_event_seq"], self.room_id)
        message = await tx.row(_MESSAGE, task["source_message_id"])
        assert message is not None
        await tx.run(_MESSAGE_CLAIMED, role, message["id"])
        participant = await self._participant(tx, role)
        participant.update(status="active", last_seen_at=now, updated_at=now)
        tx.event(room, "participant_updated", "participant", participant)
        await tx.run(_ROOM_EVENT_SEQ, room["last_event_seq"], self.room_id)
        await tx.run(_PARTICIPANT_ACTIVE, "active", now, now, participant["id"])
        await tx.write_events(room)

    async def handoff(self, tx: DirectTx, sender: str, target: str) -> uuid.UUID | None:
        room = await self._room(tx)
        await self._active(tx)  # a lapsed lease would be expired here
        task = await self._active(tx)
        assert task is not None and task["status"] == "in_progress"
        assert task["assigned_to"] == sender
        now = _now()
        task.update(status="completed", updated_at=now, completed_at=now, lease_expires_at=None)
        await tx.run(_TASK_COMPLETED, "completed", now, now, None, task["id"])
        tx.event(room, "task_updated", "task", task)
        room["last_message_seq"] += 1
        await tx.run(
            _ROOM_BOTH_SEQS, room["last_message_seq"], room["last_event_seq"], self.room_id
        )
        content = f"{sender} done with {self.n}"
        message = self._message(room, sender, target, content, "handoff")
        await tx.run(_INSERT_MESSAGE, *message.values())
        tx.event(room, "message_created", "message", message)
        await tx.run(_ROOM_EVENT_SEQ, room["last_event_seq"], self.room_id)
        new_id = None
        if target != "user":
            new = self._task(
                "pending", content, sender, target, message["id"], task["origin_message_id"]
            )
            await tx.run(_INSERT_TASK, *new.values())
            await tx.run(_MESSAGE_TASK, new["id"], message["id"])
            tx.event(room, "task_created", "task", new)
            await tx.run(_ROOM_EVENT_SEQ, room["last_event_seq"], self.room_id)
            new_id = new["id"]
        else:  # the baton is free: promote the oldest queued task (there is none here)
            assert await self._active(tx) is None
            assert await tx.row(_NEXT_QUEUED, self.room_id, "queued", 1) is None
        participant = await self._participant(tx, sender)
        participant.update(status="waiting", updated_at=now)
        tx.event(room, "participant_updated", "participant", participant)
        await tx.run(_ROOM_EVENT_SEQ, room["last_event_seq"], self.room_id)
        await tx.run(_PARTICIPANT_WAITING, "waiting", now, participant["id"])
        await tx.write_events(room)
        return new_id

    async def _participant(self, tx: DirectTx, role: str) -> dict[str, Any]:
        row = await tx.row(_PARTICIPANT, self.room_id, role)
        assert row is not None
        return dict(row)

    def _message(
        self, room: dict[str, Any], sender: str, target: str | None, content: str, type_: str
    ) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "chatroom_id": self.room_id,
            "seq": room["last_message_seq"],
            "sender_role": sender,
            "target_role": target,
            "content": content,
            "type": type_,
            "classification": None,
            "follows_message_id": None,
            "effective_classification": None,
            "task_id": None,
            "claimed_by_role": None,
            "created_at": _now(),
        }

    def _task(
        self,
        status: str,
        content: str,
        created_by: str,
        assigned_to: str | None,
        source: uuid.UUID,
        origin: uuid.UUID,
    ) -> dict[str, Any]:
        now = _now()
        return {
            "id": uuid.uuid4(),
            "chatroom_id": self.room_id,
            "status": status,
            "content": content,
            "created_by": created_by,
            "assigned_to": assigned_to,
            "source_message_id": source,
            "origin_message_id": origin,
            "queue_position": None,
            "attempt": 0,
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "completed_at": None,
            "lease_expires_at": None,
        }

    async def cycle(self, record: Record, stop_at: float) -> None:
        self.n += 1
        n = self.n
        task_id: uuid.UUID | None = None

        async def timed(kind: str, name: str, work: Callable[[DirectTx], Awaitable[Any]]) -> Any:
            if time.perf_counter() >= stop_at:
                raise Stop
            started = time.perf_counter()
            result = await self.transaction(name, work)
            record(kind, started, time.perf_counter())
            return result

        task_id = await timed(
            "message", "sendMessage", lambda tx: self.send_message(tx, f"request {n}")
        )
        assert task_id is not None
        await timed("claim", "claimTask", lambda tx: self.claim(tx, task_id, "builder"))
        task_id = await timed(
            "handoff",
            "sendHandoff (to agent)",
            lambda tx: self.handoff(tx, "builder", "reviewer"),
        )
        assert task_id is not None
        await timed("claim", "claimTask (handoff)", lambda tx: self.claim(tx, task_id, "reviewer"))
        await timed(
            "handoff", "sendHandoff (to user)", lambda tx: self.handoff(tx, "reviewer", "user")
        )

    async def aclose(self) -> None:
        pass


# --- driving and measuring ----------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    pairs: int
    seconds: float
    ops: dict[str, float]  # ops/s by kind
    p50: dict[str, float]
    p99: dict[str, float]
    cpu: CpuShares | None = None

    @property
    def total_ops(self) -> float:
        return sum(self.ops.values()) * self.seconds

    def cpu_text(self) -> str:
        if self.cpu is None or not self.total_ops:
            return ""
        per_op = 1000 * self.seconds / self.total_ops
        return (
            f"{self.cpu.text()}; per mutation: server {self.cpu.server * per_op:.1f} ms, "
            f"PostgreSQL {self.cpu.postgres * per_op:.1f} ms"
        )


async def drive(
    mode: str,
    pairs: Sequence[Any],
    warmup: float,
    seconds: float,
    meter: CpuMeter | None = None,
) -> Result:
    samples: list[tuple[str, float, float]] = []

    def record(kind: str, started: float, ended: float) -> None:
        samples.append((kind, started, ended))

    begin = time.perf_counter()
    measure_from = begin + warmup
    stop_at = measure_from + seconds

    async def loop(pair: Any) -> None:
        try:
            while True:
                await pair.cycle(record, stop_at)
        except Stop:
            pass

    async def cpu_window() -> CpuShares | None:
        if meter is None:
            return None
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        meter.start()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        return meter.stop()

    cpu = asyncio.create_task(cpu_window())
    await asyncio.gather(*(loop(p) for p in pairs))
    window = [s for s in samples if measure_from <= s[1] < stop_at]
    ops, p50, p99 = {}, {}, {}
    for kind in KINDS:
        done = [s for s in samples if s[0] == kind and measure_from <= s[2] <= stop_at]
        ops[kind] = len(done) / seconds
        latencies = [e - s for k, s, e in window if k == kind]
        p50[kind] = percentile(latencies, 50)
        p99[kind] = percentile(latencies, 99)
    return Result(mode, len(pairs), seconds, ops, p50, p99, await cpu)


async def make_rooms(url: str, n: int, label: str) -> list[tuple[str, str]]:
    """n (token, room) pairs: a guest account and a pair room each, made through the API."""

    async def one(i: int) -> tuple[str, str]:
        token = await new_owner(url, f"{label}{i}")
        async with Client(url, token) as client:
            return token, await new_room(client, f"{label}-{i}")

    made: list[tuple[str, str]] = []
    for start in range(0, n, 10):
        made += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 10))))
    return made


async def app_statement_counts(db_url: str, token: str, room_id: str) -> dict[str, int]:
    """Statements per step as the app's resolvers send them (the same calls the mutations
    make), captured with SQLAlchemy's before_cursor_execute event via bench.hot_paths."""
    from bench.hot_paths import Cycle, StatementLog
    from chatroom.db.session import create_engine

    engine = create_engine(db_url, pool_size=1, max_overflow=0)
    try:
        log = StatementLog(engine)
        cycle = Cycle(engine, token, room_id)
        counts = {}
        for name in Cycle.STEPS:
            with log.capturing() as statements:
                await cycle.step(name)
            counts[name] = len(statements)
        log.close()
        return counts
    finally:
        await engine.dispose()


@dataclass
class Report:
    results: list[Result]
    app_counts: dict[str, int]
    direct_counts: dict[str, int]
    workers_result: Result | None = None
    details: str = ""


async def measure(
    quick: bool = False,
    levels: Sequence[int] = (1, 10, 50),
    seconds: float | None = None,
    workers_check: bool = True,
) -> Report:
    raise_nofile()
    seconds = seconds or (3.0 if quick else 6.0)
    warmup = 1.0 if quick else 2.0
    results: list[Result] = []
    async with bench_database("chatroom_bench_tp") as db_url:
        async with Server(db_url) as server:
            http = server.http_url
            rooms = {
                (mode, n): await make_rooms(http, n, f"{mode}{n}-")
                for mode in ("graphql", "direct")
                for n in levels
            }
            extra = await make_rooms(http, 1, "count-")
            for n in levels:
                pairs = [GraphQLPair(http, t, r) for t, r in rooms[("graphql", n)]]
                meter = CpuMeter(server.pid, database_name(db_url))
                try:
                    results.append(await drive("graphql", pairs, warmup, seconds, meter))
                finally:
                    await asyncio.gather(*(p.aclose() for p in pairs))
        app_counts = await app_statement_counts(db_url, *extra[0])
        direct_counts: dict[str, int] = {}
        pool = await Connections.open(db_url, min(max(levels), APP_POOL))
        try:
            for n in levels:
                pool_n = Connections(pool.conns[: min(n, APP_POOL)])
                direct = [DirectPair(pool_n, t, r) for t, r in rooms[("direct", n)]]
                meter = CpuMeter(None, database_name(db_url))
                results.append(await drive("direct", direct, warmup, seconds, meter))
                direct_counts = direct[0].counts
        finally:
            await pool.close()
        workers_result = None
        if workers_check:
            # Is the single process the limit? The same 50-pair loop against 2 workers.
            n = max(levels)
            async with Server(db_url, workers=2) as server:
                made = await make_rooms(server.http_url, n, "workers-")
                pairs = [GraphQLPair(server.http_url, t, r) for t, r in made]
                meter = CpuMeter(server.pid, database_name(db_url))
                try:
                    workers_result = await drive("graphql", pairs, warmup, seconds, meter)
                finally:
                    await asyncio.gather(*(p.aclose() for p in pairs))
    return Report(results, app_counts, direct_counts, workers_result)


def _find(results: list[Result], mode: str, pairs: int) -> Result:
    return next(r for r in results if r.mode == mode and r.pairs == pairs)


def detail_table(report: Report) -> str:
    rows = []
    levels = sorted({r.pairs for r in report.results})
    for n in levels:
        g, d = _find(report.results, "graphql", n), _find(report.results, "direct", n)
        for kind in KINDS:
            rows.append(
                (
                    f"{n} pair(s)  {kind}",
                    f"{g.ops[kind]:.0f}",
                    f"{d.ops[kind]:.0f}",
                    f"{g.ops[kind] / d.ops[kind]:.2f}" if d.ops[kind] else "-",
                    f"{g.p50[kind] * 1000:.1f}",
                    f"{g.p99[kind] * 1000:.1f}",
                    f"{d.p50[kind] * 1000:.1f}",
                    f"{d.p99[kind] * 1000:.1f}",
                )
            )
    if report.workers_result is not None:
        w = report.workers_result
        for kind in KINDS:
            rows.append(
                (
                    f"{w.pairs} pairs, 2 workers  {kind}",
                    f"{w.ops[kind]:.0f}",
                    "",
                    "",
                    f"{w.p50[kind] * 1000:.1f}",
                    f"{w.p99[kind] * 1000:.1f}",
                    "",
                    "",
                )
            )
    headers = (
        "concurrency / step",
        "gql ops/s",
        "direct ops/s",
        "ratio",
        "gql p50 ms",
        "gql p99 ms",
        "direct p50",
        "direct p99",
    )
    counts = ", ".join(
        f"{name} {report.app_counts.get(name, '?')}/{report.direct_counts.get(name, '?')}"
        for name in (
            "sendMessage",
            "claimTask",
            "sendHandoff (to agent)",
            "claimTask (handoff)",
            "sendHandoff (to user)",
        )
    )
    cpu_lines = [
        f"  {r.mode} {r.pairs} pair(s){' (2 workers)' if r is report.workers_result else ''}: "
        f"{r.cpu_text()}"
        for r in [*report.results, *filter(None, [report.workers_result])]
    ]
    return (
        f"throughput: {database_description()}; statements per step app/direct: {counts}\n"
        + format_table(headers, rows)
        + "\n"
        + "\n".join(cpu_lines)
    )


def summary_rows(report: Report) -> list[Row]:
    rows = []
    levels = sorted({r.pairs for r in report.results})
    for n in levels:
        g, d = _find(report.results, "graphql", n), _find(report.results, "direct", n)
        for kind in ("handoff", "claim"):
            ratio = g.ops[kind] / d.ops[kind] if d.ops[kind] else 0.0
            target = kind == "handoff"
            rows.append(
                Row(
                    f"{kind} throughput, {n} pair{'s' if n > 1 else ''} (GraphQL vs asyncpg)",
                    f"{g.ops[kind]:.0f}/s",
                    f"{d.ops[kind]:.0f}/s",
                    f"{ratio:.2f}" + (f" (>= {HANDOFF_SHARE_TARGET:.2f})" if target else ""),
                    ratio >= HANDOFF_SHARE_TARGET if target else None,
                )
            )
    top = max(levels)
    g, d = _find(report.results, "graphql", top), _find(report.results, "direct", top)
    for kind in ("handoff", "claim"):
        target = kind == "handoff"
        rows.append(
            Row(
                f"{kind} p50 / p99, {top} pairs",
                f"{g.p50[kind] * 1000:.1f} / {g.p99[kind] * 1000:.1f} ms",
                f"{d.p50[kind] * 1000:.1f} / {d.p99[kind] * 1000:.1f} ms",
                f"p99 < {HANDOFF_P99_TARGET * 1000:.0f} ms" if target else "",
                g.p99[kind] < HANDOFF_P99_TARGET if target else None,
            )
        )
    if report.workers_result is not None:
        w = report.workers_result
        rows.append(
            Row(
                f"handoff, {w.pairs} pairs, uvicorn --workers 2 (ops/s, p99)",
                f"{w.ops['handoff']:.0f}/s, {w.p99['handoff'] * 1000:.1f} ms",
                f"{g.ops['handoff']:.0f}/s, {g.p99['handoff'] * 1000:.1f} ms (1 proc)",
                f"{w.ops['handoff'] / g.ops['handoff']:.2f}x" if g.ops["handoff"] else "",
                None,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--pairs", default="1,10,50", help="concurrency levels")
    parser.add_argument("--seconds", type=float, default=None, help="measuring window per run")
    parser.add_argument("--no-workers", action="store_true", help="skip the 2-worker run")
    args = parser.parse_args()
    levels = [int(x) for x in args.pairs.split(",")]
    report = asyncio.run(
        measure(args.quick, levels, args.seconds, workers_check=not args.no_workers)
    )
    print(detail_table(report))
    print()
    print(summary_table(summary_rows(report)))
    print(f"\nmachine: {machine()}")


if __name__ == "__main__":
    main()
