"""Hot paths in an empty room and in a room with 10,000 messages and 10,000 tasks.

    .venv/bin/python -m bench.hot_paths [--runs 200] [--size 10000]

Uses a fresh database on DATABASE_URL's server (created and dropped here), or an embedded
PostgreSQL in a temporary directory when DATABASE_URL is unset. Both rooms live in one database
and are measured in the same process, cycles interleaved, so the ratio compares like with like.

The room builders and the cycle are shared with tests/db/test_hot_paths.py, which checks the
query plans and statement counts (timings are only reported here, never asserted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import bench_database
from chatroom.db import driver
from chatroom.db.session import Database, create_engine
from chatroom.resolvers import auth, handoffs, messages, rooms, tasks
from chatroom.resolvers.auth import Caller

BIG_ROOM_SIZE = 10_000

# --- building the rooms -----------------------------------------------------------------------

# Message i (seq i) is a user request when i is odd, else the builder's answer to it; task i
# came from message i. Ids are derived from (room, kind, i) so rows can point at each other.
# Nothing is pending, in progress or queued: the room is idle, like the empty one.
_FILL_MESSAGES = """
INSERT INTO messages (id, chatroom_id, seq, sender_role, target_role, content, type,
                      classification, effective_classification, claimed_by_role, created_at)
SELECT md5($1 || ':m:' || i)::uuid, $1::uuid, i,
       CASE WHEN i % 2 = 1 THEN 'user' ELSE 'builder' END,
       CASE WHEN i % 2 = 1 THEN 'builder' ELSE 'user' END,
       'message ' || i || ' ' || repeat('lorem ipsum ', 8),
       CASE WHEN i % 2 = 1 THEN 'message' ELSE 'handoff' END,
       CASE WHEN i % 2 = 1 THEN 'question' END,
       CASE WHEN i % 2 = 1 THEN 'question' END,
       CASE WHEN i % 2 = 1 THEN 'builder' END,
       now() - make_interval(secs => $2 - i)
  FROM generate_series(1, $2) AS i
"""
_FILL_TASKS = """
INSERT INTO tasks (id, chatroom_id, status, content, created_by, assigned_to, source_message_id,
                   origin_message_id, queue_position, attempt, created_at, updated_at,
                   started_at, completed_at, lease_expires_at)
SELECT md5($1 || ':t:' || i)::uuid, $1::uuid,
       CASE WHEN i > $2 - 500 THEN 'backlog'
            WHEN i > $2 - 1000 THEN 'cancelled'
            ELSE 'completed' END,
       'task ' || i,
       CASE WHEN i % 2 = 1 THEN 'user' ELSE 'builder' END,
       CASE WHEN i > $2 - 500 THEN NULL WHEN i % 2 = 1 THEN 'builder' ELSE 'reviewer' END,
       md5($1 || ':m:' || i)::uuid,
       md5($1 || ':m:' || (i - 1 + i % 2))::uuid,
       NULL,
       CASE WHEN i > $2 - 500 THEN 0 ELSE 1 END,
       now() - make_interval(secs => $2 - i), now() - make_interval(secs => $2 - i),
       CASE WHEN i > $2 - 500 THEN NULL ELSE now() - make_interval(secs => $2 - i) END,
       CASE WHEN i > $2 - 500 THEN NULL ELSE now() - make_interval(secs => $2 - i) END,
       NULL
  FROM generate_series(1, $2) AS i
"""
_LINK_MESSAGES = """
UPDATE messages SET task_id = md5($1 || ':t:' || seq)::uuid WHERE chatroom_id = $1::uuid
"""
# Two events per i (message_created, task_created), numbered after the room's own ($3).
_FILL_EVENTS = """
INSERT INTO room_events (chatroom_id, seq, kind, payload, created_at)
SELECT $1::uuid, $3 + 2 * i - 1, 'message_created',
       jsonb_build_object('message', jsonb_build_object('id', md5($1 || ':m:' || i)::uuid)),
       now() - make_interval(secs => $2 - i)
  FROM generate_series(1, $2) AS i
UNION ALL
SELECT $1::uuid, $3 + 2 * i, 'task_created',
       jsonb_build_object('task', jsonb_build_object('id', md5($1 || ':t:' || i)::uuid)),
       now() - make_interval(secs => $2 - i)
  FROM generate_series(1, $2) AS i
"""
_ROOM_COUNTERS = """
UPDATE chatrooms
   SET last_message_seq = $2, last_event_seq = last_event_seq + 2 * $2,
       last_origin_message_id = md5($1 || ':m:' || ($2 - 1 + $2 % 2))::uuid
 WHERE id = $1::uuid
"""


async def fill_room(engine: AsyncEngine, room_id: str, size: int) -> None:
    """`size` messages, tasks (and two events each) for a freshly created, idle room, with its
    counters moved on to match; then ANALYZE so the planner has real statistics."""
    async with engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        row = await raw.fetchrow(
            "SELECT last_message_seq, last_event_seq FROM chatrooms WHERE id = $1::uuid FOR UPDATE",
            room_id,
        )
        assert row is not None and row["last_message_seq"] == 0, "fill a new room only"
        await raw.execute(_FILL_MESSAGES, room_id, size)
        await raw.execute(_FILL_TASKS, room_id, size)
        await raw.execute(_LINK_MESSAGES, room_id)
        await raw.execute(_FILL_EVENTS, room_id, size, row["last_event_seq"])
        await raw.execute(_ROOM_COUNTERS, room_id, size)
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        # Real statistics for the planner (autovacuum would get there, later).
        await raw.execute("ANALYZE")
        await conn.commit()


@dataclass
class Rooms:
    token: str
    empty: str
    big: str


async def build_rooms(engine: AsyncEngine, size: int = BIG_ROOM_SIZE) -> Rooms:
    db = Database(engine)
    async with db.transaction() as tx:
        token, _user = await auth.create_guest_session(tx, display_name="Bench")
    ids = []
    for name in ("empty", "big"):
        async with db.transaction() as tx:
            caller = await auth.authenticate(tx, token)
            room = await rooms.create_chatroom(
                tx,
                caller,
                team_id="pair",
                name=name,
                roles=None,
                entry_point=None,
                idempotency_key=None,
            )
            ids.append(str(room.id))
    await fill_room(engine, ids[1], size)
    return Rooms(token, ids[0], ids[1])


# --- the cycle ----------------------------------------------------------------------------------


class StatementLog:
    """Every statement sent while `capturing`: the engine's (SQLAlchemy's cursor events) and
    those sent straight to a driver connection (chatroom/db/driver.py; any engine's, so capture
    with one engine at work)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []
        self.active = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)
        driver.observers.append(self._sent)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.active:
            self.statements.append((statement, parameters))

    def _sent(self, statement: str, parameters: tuple[Any, ...]) -> None:
        if self.active:
            self.statements.append((statement, parameters))

    @contextlib.contextmanager
    def capturing(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False

    def close(self) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._seen)
        driver.observers.remove(self._sent)


Resolver = Callable[..., Awaitable[Any]]


@dataclass
class Cycle:
    """One request's life: user message, pending list, claim, context, handoff to reviewer,
    reviewer's claim, handoff back to the user. Each step is one transaction, run the way the
    GraphQL layer runs it (authenticate, then the resolver)."""

    engine: AsyncEngine
    token: str
    room_id: str
    db: Database = field(init=False)
    task_id: str = ""
    n: int = 0

    STEPS = (
        "sendMessage",
        "pendingTasks",
        "claimTask",
        "contextWindow",
        "sendHandoff (to agent)",
        "claimTask (handoff)",
        "sendHandoff (to user)",
    )

    def __post_init__(self) -> None:
        self.db = Database(self.engine)

    async def call(self, resolver: Resolver, **kwargs: Any) -> Any:
        async with self.db.transaction() as tx:
            caller: Caller = await auth.authenticate(tx, self.token)
            return await resolver(tx, caller, chatroom_id=self.room_id, **kwargs)

    async def step(self, name: str) -> None:
        if name == "sendMessage":
            self.n += 1
            sent = await self.call(messages.send_message, content=f"request {self.n}")
            assert sent.task is not None and sent.task.status == "pending", sent
            self.task_id = str(sent.task.id)
        elif name == "pendingTasks":
            pending = await self.call(tasks.pending_tasks, role="builder")
            assert [str(t.id) for t in pending] == [self.task_id]
        elif name == "claimTask":
            claimed = await self.call(
                tasks.claim_task, task_id=self.task_id, role="builder", idempotency_key=None
            )
            assert claimed.success
        elif name == "contextWindow":
            window = await self.call(messages.context_window, role="builder")
            assert window.task is not None and str(window.task.id) == self.task_id
        elif name == "sendHandoff (to agent)":
            outcome = await self.call(
                handoffs.send_handoff,
                sender_role="builder",
                content="please review",
                target_role="reviewer",
            )
            assert outcome.new_task is not None
            self.task_id = str(outcome.new_task.id)
        elif name == "claimTask (handoff)":
            claimed = await self.call(tasks.claim_task, task_id=self.task_id, role="reviewer")
            assert claimed.success
        elif name == "sendHandoff (to user)":
            outcome = await self.call(
                handoffs.send_handoff, sender_role="reviewer", content="done", target_role="user"
            )
            assert outcome.promoted_task is None
        else:  # pragma: no cover
            raise ValueError(name)


# --- the benchmark ------------------------------------------------------------------------------


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def run(runs: int, size: int) -> None:
    async with bench_database("chatroom_bench_hp") as url:
        engine = create_engine(url, pool_size=2, max_overflow=0)
        try:
            log = StatementLog(engine)
            setup_started = time.perf_counter()
            built = await build_rooms(engine, size)
            setup_s = time.perf_counter() - setup_started
            cycles = {
                "empty": Cycle(engine, built.token, built.empty),
                "big": Cycle(engine, built.token, built.big),
            }
            timings: dict[tuple[str, str], list[float]] = {}
            counts: dict[tuple[str, str], int] = {}
            for i in range(runs + 10):  # the first 10 cycles warm up caches and pools
                for which, cycle in cycles.items():
                    for name in Cycle.STEPS:
                        with log.capturing() as statements:
                            started = time.perf_counter()
                            await cycle.step(name)
                            elapsed = time.perf_counter() - started
                        counts[(which, name)] = len(statements)
                        if i >= 10:
                            timings.setdefault((which, name), []).append(elapsed * 1000)
            log.close()
        finally:
            await engine.dispose()

    server = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL"
    print(
        f"hot paths: {runs} runs each, {server}; big room = {size:,} messages + {size:,} tasks "
        f"(+{runs + 10} cycles during the run; built in {setup_s:.1f}s)"
    )
    header = (
        f"{'hot path':<24}{'stmts':>6}{'empty med':>11}{'empty p95':>11}"
        f"{'big med':>10}{'big p95':>10}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for name in Cycle.STEPS:
        empty, big = timings[("empty", name)], timings[("big", name)]
        stmts = counts[("empty", name)]
        if counts[("big", name)] != stmts:
            stmts_text = f"{stmts}/{counts[('big', name)]}"
        else:
            stmts_text = str(stmts)
        ratio = statistics.median(big) / statistics.median(empty)
        print(
            f"{name:<24}{stmts_text:>6}{statistics.median(empty):>9.2f}ms{_p95(empty):>9.2f}ms"
            f"{statistics.median(big):>8.2f}ms{_p95(big):>8.2f}ms{ratio:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="timed cycles per room")
    parser.add_argument("--size", type=int, default=BIG_ROOM_SIZE, help="messages/tasks")
    args = parser.parse_args()
    asyncio.run(run(args.runs, args.size))


if __name__ == "__main__":
    main()
