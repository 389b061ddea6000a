"""Three server processes on one database, under load (SPEC §4: "an event committed through
any of them reaches subscribers on all of them").

Six pair rooms get 30 roomEvents subscribers spread over the three processes: half subscribe
from seq 0 before the load starts, half join in the middle of it with a cursor somewhere in the
past (replay, then live). Six concurrent clients run handoff cycles (360 mutations), sending
each request to the next process in turn. Every subscriber must then hold exactly its slice of
its room's log (the room_events table): every event once, in seq order.

Meanwhile, in a seventh room, the builder's taskAvailable waiter is opened again and again on
the next process: each newer waiter ends the older one with SUPERSEDED across processes, and
only the newest is delivered the next task; nine claimers of that task, three per process,
then race and exactly one wins.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from typing import Any

from tests.reliability.common import (
    NO_RATE_LIMIT,
    WAIT,
    CycleResult,
    EventWatcher,
    RetryingClient,
    TaskWaiter,
    check_invariants,
    new_owner,
    new_room,
    room_log,
    run_cycle,
    verify_cycles,
    waiter_id,
)
from tests.support import dbutil
from tests.support.api import until
from tests.support.documents import CLAIM, SEND
from tests.support.pg import PgDatabase

PROCESSES = 3
ROOMS = 6
SUBSCRIBERS_PER_ROOM = 5  # 30 in all
CYCLES_PER_ROOM = 12  # x 5 mutations x 6 rooms = 360 changes
WAITER_ROUNDS = 6
CLAIMERS_PER_PROCESS = 3


class RoundRobin:
    """Looks like one server; each request goes to the next process."""

    def __init__(self, servers: list[Any]) -> None:
        self._servers = servers
        self._next = 0

    @property
    def http_url(self) -> str:
        self._next += 1
        return str(self._servers[self._next % len(self._servers)].http_url)


async def test_every_subscriber_on_every_process_sees_every_event_once(
    db: PgDatabase, start_server
) -> None:
    # db before start_server: the servers stop before their database is dropped.
    servers = [await start_server(db.url, NO_RATE_LIMIT) for _ in range(PROCESSES)]
    token, _ = await new_owner(servers[0])
    async with RetryingClient(servers[0], token) as setup:
        rooms = [await new_room(setup, f"multiprocess {i}") for i in range(ROOMS)]
        waiter_room = await new_room(setup, "multiprocess: waiters")

    watchers: list[EventWatcher] = []

    def subscribe(room_index: int, after_seq: int, name: str) -> None:
        server = servers[len(watchers) % PROCESSES]
        room_id = rooms[room_index]
        watchers.append(EventWatcher([server], token, room_id, after_seq, name=name).start())

    early = SUBSCRIBERS_PER_ROOM // 2 + 1
    for i in range(ROOMS):
        for j in range(early):
            subscribe(i, 0, f"room {i} early {j}")

    clients: list[RetryingClient] = []

    async def drive(i: int) -> list[CycleResult]:
        async with RetryingClient(RoundRobin(servers), token) as client:  # type: ignore[arg-type]
            clients.append(client)
            return [await run_cycle(client, rooms[i], f"mp{i}", n) for n in range(CYCLES_PER_ROOM)]

    async def late_joiners() -> None:
        """Half the subscribers join mid-load with a cursor in the past."""
        await asyncio.sleep(0.5)
        rng = random.Random(7)
        for i in range(ROOMS):
            head = int(
                await dbutil.fetchval(
                    db.url,
                    "SELECT last_event_seq FROM chatrooms WHERE id = $1",
                    uuid.UUID(rooms[i]),
                )
            )
            for j in range(SUBSCRIBERS_PER_ROOM - early):
                subscribe(i, rng.randint(0, head), f"room {i} late {j}")
            await asyncio.sleep(0.1)

    started = time.monotonic()
    loads = [asyncio.create_task(drive(i)) for i in range(ROOMS)]
    joining = asyncio.create_task(late_joiners())
    supersede = asyncio.create_task(_superseding_waiters(servers, token, db.url, waiter_room))
    results = await asyncio.gather(*loads)
    load_time = time.monotonic() - started
    await joining
    winner_count, waiter_rounds = await supersede
    assert len(watchers) == ROOMS * SUBSCRIBERS_PER_ROOM

    events_checked = 0
    try:
        logs = {rid: await room_log(db.url, rid) for rid in rooms}
        for watcher in watchers:
            log = logs[watcher.room_id]
            await watcher.wait_for(log[-1][0], within=30)
        for watcher in watchers:
            expected = [e for e in logs[watcher.room_id] if e[0] > watcher.after_seq]
            events_checked += watcher.check(expected)
            assert watcher.connects == 1, (watcher.name, dict(watcher.failures))
    finally:
        for watcher in watchers:
            await watcher.stop()

    rows = 0
    for i, (rid, done) in enumerate(zip(rooms, results, strict=True)):
        rows += await verify_cycles(db.url, rid, f"mp{i}", done)
    report = await check_invariants(db.url)
    per_process = Counter(w.servers[0].base_url for w in watchers)
    print(
        f"\nmultiprocess: {PROCESSES} processes; {sum(c.calls for c in clients)} mutations "
        f"({sum(len(r) for r in results)} cycles) round-robin in {load_time:.1f}s; "
        f"{len(watchers)} subscribers {sorted(per_process.values())} per process saw "
        f"{events_checked} events exactly once in order"
    )
    print(
        f"multiprocess: taskAvailable superseded across processes {waiter_rounds - 1} times; "
        f"{PROCESSES * CLAIMERS_PER_PROCESS} claimers on {PROCESSES} processes, "
        f"{winner_count} winner; {rows} cycle rows, {report.events} events, "
        f"{report.idempotency_records} idempotency records checked"
    )


async def _superseding_waiters(
    servers: list[Any], token: str, url: str, room_id: str
) -> tuple[int, int]:
    """One waiter per role, across processes: each newer waiter (on the next process) ends the
    older one with SUPERSEDED; only the newest gets the task; one claimer of nine wins."""
    waiters: list[TaskWaiter] = []
    previous = None
    try:
        for k in range(WAITER_ROUNDS):
            waiter = TaskWaiter(servers[k % PROCESSES], token, room_id, "builder", reconnect=False)
            waiters.append(waiter.start())

            async def registered(before: uuid.UUID | None = previous) -> uuid.UUID | None:
                now = await waiter_id(url, room_id, "builder")
                return now if now is not None and now != before else None

            previous = await until(registered, f"waiter {k} registered", WAIT, 0.05)
            if k:
                ended = await waiters[k - 1].next_delivery(0)
                assert ended["kind"] == "SUPERSEDED", ended
        async with RetryingClient(servers[0], token) as client:
            sent = await client.execute(SEND, input={"chatroomId": room_id, "content": "w"})
        task_id = sent["sendMessage"]["task"]["id"]
        got = await waiters[-1].next_delivery(0)
        assert (got["kind"], got["task"]["id"]) == ("TASK", task_id), got
        for older in waiters[:-1]:
            assert [d["kind"] for d in older.deliveries] == ["SUPERSEDED"], older.deliveries
            assert older.ended

        async def claim(server: Any, n: int) -> bool:
            async with RetryingClient(server, token) as client:
                body = {"chatroomId": room_id, "taskId": task_id, "role": "builder",
                        "idempotencyKey": f"race-{n}"}  # fmt: skip
                return bool((await client.execute(CLAIM, input=body))["claimTask"]["success"])

        outcomes = await asyncio.gather(
            *(claim(servers[n % PROCESSES], n) for n in range(PROCESSES * CLAIMERS_PER_PROCESS))
        )
        assert outcomes.count(True) == 1, outcomes
        attempt = await dbutil.fetchval(
            url, "SELECT attempt FROM tasks WHERE id = $1", uuid.UUID(task_id)
        )
        assert attempt == 1, attempt
        return outcomes.count(True), len(waiters)
    finally:
        for waiter in waiters:
            await waiter.stop()
