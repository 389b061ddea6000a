"""PostgreSQL restarted under load; the app recovers without a restart (SPEC §4).

A DEDICATED embedded PostgreSQL (in this test's tmp dir, whatever DATABASE_URL says: stopping
the shared server would break everyone else's tests) is started and migrated, and one app
process is started on it. Subscribers follow four busy rooms (roomEvents from seq 0) and an
idle one (taskAvailable as the builder); four clients run handoff cycles in the busy rooms,
retrying every mutation with its idempotency key (on transport errors, 5xx and INTERNAL, which
is what a client sees while the database is away). PostgreSQL is then stopped for ~2 s and
started again on the same data directory.

The app must come back by itself (the pool replacing the connections the server closed, the
listener's reconnect and catch-up): /healthz answers 503 while the database is down and 200
after, ``listenerReconnects`` went up; every mutation ended up applied exactly once; the
subscribers (resuming with their last seq if their subscription failed) hold every event of
their room exactly once, in order; the waiter is delivered the first task created after the
restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from chatroom.db.embedded import EmbeddedPostgres
from chatroom.db.migrate import upgrade_to_head
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
    replayed,
    room_log,
    run_cycle,
    verify_cycles,
    waiter_id,
)
from tests.support.api import until
from tests.support.documents import SEND
from tests.support.server import healthz

LOAD_ROOMS = 4
OUTAGE_SECONDS = 2.0
LOAD_BEFORE = 2.0  # seconds of load before the outage
LOAD_AFTER = 3.0  # ... and after the app is healthy again
# While the database is away, a mutation fails with INTERNAL (its transaction never started
# or was rolled back); the client retries it with the same key.
RETRY_CODES = ("INTERNAL",)


async def test_app_recovers_from_a_postgres_restart_without_restarting(
    tmp_path: Path, start_server
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")
    url = await asyncio.to_thread(pg.start)
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        server = await start_server(url, NO_RATE_LIMIT)
        try:
            await _scenario(pg, url, server)
        finally:
            await server.stop()
    finally:
        await asyncio.to_thread(pg.stop)


async def _scenario(pg: EmbeddedPostgres, url: str, server) -> None:
    token, _ = await new_owner(server)
    async with RetryingClient(server, token) as setup:
        rooms = [await new_room(setup, f"pg restart {i}") for i in range(LOAD_ROOMS)]
        idle_room = await new_room(setup, "pg restart: waiter")
    watchers = [
        EventWatcher([server], token, rid, after_seq=0, name=f"room {i}.{j}").start()
        for i, rid in enumerate(rooms)
        for j in range(2)
    ]
    waiter = TaskWaiter(server, token, idle_room, "builder").start()
    await until(
        lambda: waiter_id(url, idle_room, "builder"), "the builder's waiter registered", WAIT, 0.05
    )

    status, before = await healthz(server, 3.0)
    assert status == 200 and before["listener"] == "connected", before

    stop_load = asyncio.Event()
    clients: list[RetryingClient] = []

    async def load(i: int, room_id: str) -> list[CycleResult]:
        done: list[CycleResult] = []
        async with RetryingClient(
            server, token, retry_codes=RETRY_CODES, give_up_after=60
        ) as client:
            clients.append(client)
            while not stop_load.is_set():
                done.append(await run_cycle(client, room_id, f"pg{i}", len(done)))
        return done

    loaders = [asyncio.create_task(load(i, rid)) for i, rid in enumerate(rooms)]
    health: Counter[int] = Counter()
    try:
        await asyncio.sleep(LOAD_BEFORE)

        # --- the outage ---------------------------------------------------------------------
        down_at = time.monotonic()
        await asyncio.to_thread(pg.stop)
        stopped_in = time.monotonic() - down_at
        while time.monotonic() - down_at < stopped_in + OUTAGE_SECONDS:
            status, _ = await healthz(server, 3.0)
            health[status] += 1
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(pg.start) == url, "same data dir, same socket, same URL"
        outage = time.monotonic() - down_at

        async def recovered() -> dict | None:
            status, body = await healthz(server, 3.0)
            health[status] += 1
            ok = status == 200 and body.get("listener") == "connected"
            return (
                body if ok and body["listenerReconnects"] > before["listenerReconnects"] else None
            )

        after = await until(recovered, "/healthz 200 with the listener reconnected", 30, 0.1)
        recovery = time.monotonic() - down_at - outage
        await asyncio.sleep(LOAD_AFTER)
    finally:
        stop_load.set()
        results = await asyncio.gather(*loaders)

    # The first task created after the restart reaches the waiter (resubscribed or not).
    async with RetryingClient(server, token, retry_codes=RETRY_CODES) as client:
        sent = await client.execute(SEND, input={"chatroomId": idle_room, "content": "after"})
    task_id = sent["sendMessage"]["task"]["id"]
    delivered = await waiter.next_delivery(0)
    assert (delivered["kind"], delivered["task"]["id"]) == ("TASK", task_id), delivered
    await waiter.stop()

    events_checked = 0
    try:
        for watcher in watchers:
            log = await room_log(url, watcher.room_id)
            await watcher.wait_for(log[-1][0], within=30)
            events_checked += watcher.check(log)
    finally:
        for watcher in watchers:
            await watcher.stop()

    rows = 0
    for i, (rid, done) in enumerate(zip(rooms, results, strict=True)):
        rows += await verify_cycles(url, rid, f"pg{i}", done)
    report = await check_invariants(url)

    answered_from_record = await replayed(url, clients)
    cycles = sum(len(r) for r in results)
    reasons = sum((c.reasons for c in clients), start=Counter[str]())
    print(
        f"\npg restart: postgres down {outage:.1f}s (stop took {stopped_in:.1f}s), app healthy "
        f"{recovery:.1f}s after it was back; /healthz answers {dict(health)}; "
        f"listenerReconnects {before['listenerReconnects']} -> {after['listenerReconnects']}"
    )
    print(
        f"pg restart: {cycles} cycles ({sum(c.calls for c in clients)} mutations) under load, "
        f"{sum(c.retries for c in clients)} retries {dict(reasons)} ({answered_from_record} "
        f"answered from the idempotency record); {rows} cycle rows verified"
    )
    print(
        f"pg restart: {len(watchers)} subscribers saw {events_checked} events exactly once in "
        f"order (connects {sum(w.connects for w in watchers)}, failures "
        f"{dict(sum((w.failures for w in watchers), start=Counter[str]()))}); waiter connects "
        f"{waiter.connects}; {report.events} events, {report.idempotency_records} idempotency "
        "records checked"
    )
    assert health[503] >= 1, f"/healthz never answered 503 while the database was down: {health}"
    assert sum(r.retries for r in clients) > 0, "the outage hit no mutation: nothing was proven"
