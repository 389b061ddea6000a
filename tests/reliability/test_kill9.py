"""SIGKILL the server at random moments during 500 handoff cycles (SPEC §2.3, §2.4, §4).

Ten pair rooms are driven in parallel, 50 cycles each. A cycle is: the user's request -> the
builder claims -> the builder hands to the reviewer -> the reviewer claims -> the reviewer hands
back to the user, every mutation with an idempotency key unique to (room, cycle, step) and the
cycle number in every content. Clients retry each mutation with its key until it succeeds (on
connection errors, timeouts and 5xx). Meanwhile the server is SIGKILLed every 0.5-2 s at random
and restarted at once, and a roomEvents subscriber follows each of three rooms throughout,
resuming with its last seq after every kill.

Afterwards, from the database: every cycle left exactly its three messages (none lost, none
doubled) and its two tasks, completed and claimed once each, with the ids the client was
answered; the invariants hold (baton rule, gapless seqs equal to the counters, no orphans, the
log replays to the rows, idempotency records agree with the rows); and every subscriber saw the
room's whole log exactly once, in order.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid

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
from tests.support import dbutil
from tests.support.api import until
from tests.support.pg import PgDatabase

ROOMS = 10
CYCLES_PER_ROOM = 50
KILL_INTERVAL = (0.5, 2.0)  # seconds of uptime between a restart and the next kill
WATCHED_ROOMS = 3  # rooms followed by a roomEvents subscriber through every kill


async def test_no_handoff_lost_or_doubled_when_the_server_is_killed(
    db: PgDatabase, start_server
) -> None:
    # db before start_server: the server stops before its database is dropped.
    seed = int(os.environ.get("RELIABILITY_SEED") or time.time_ns() % 2**31)
    rng = random.Random(seed)
    print(f"\nkill9: seed {seed} (RELIABILITY_SEED={seed} repeats the kill timing)")
    server = await start_server(db.url, NO_RATE_LIMIT)
    token, _ = await new_owner(server)
    async with RetryingClient(server, token) as setup:
        rooms = [await new_room(setup, f"kill9 {i}") for i in range(ROOMS)]
    watchers = [
        EventWatcher([server], token, rid, after_seq=0, name=f"room {i}").start()
        for i, rid in enumerate(rooms[:WATCHED_ROOMS])
    ]

    done = asyncio.Event()
    kills = 0
    downtime = 0.0

    async def killer() -> None:
        nonlocal kills, downtime
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), rng.uniform(*KILL_INTERVAL))
                return
            except TimeoutError:
                pass
            await server.kill()
            kills += 1
            down = time.monotonic()
            await server.start()  # same port; returns once /healthz answers 200
            downtime += time.monotonic() - down

    clients: list[RetryingClient] = []

    async def drive(i: int, room_id: str) -> list[CycleResult]:
        async with RetryingClient(server, token, give_up_after=60) as client:
            clients.append(client)
            return [await run_cycle(client, room_id, f"k{i}", n) for n in range(CYCLES_PER_ROOM)]

    started = time.monotonic()
    killing = asyncio.create_task(killer())
    try:
        results = await asyncio.gather(*(drive(i, rid) for i, rid in enumerate(rooms)))
    finally:
        done.set()
        await killing
    elapsed = time.monotonic() - started

    try:
        events_checked = 0
        for watcher in watchers:
            log = await room_log(db.url, watcher.room_id)
            await watcher.wait_for(log[-1][0], within=30)
            events_checked += watcher.check(log)
    finally:
        for watcher in watchers:
            await watcher.stop()

    rows = 0
    for i, (rid, done_cycles) in enumerate(zip(rooms, results, strict=True)):
        assert len(done_cycles) == CYCLES_PER_ROOM
        rows += await verify_cycles(db.url, rid, f"k{i}", done_cycles)
    report = await check_invariants(db.url)
    assert "unexpected error" not in server.log_text(), "the server masked an exception"

    answered_from_record = await replayed(db.url, clients)
    cycles = sum(len(r) for r in results)
    retries = sum(c.retries for c in clients)
    reasons = sum((c.reasons for c in clients), start=type(clients[0].reasons)())
    print(
        f"kill9: {cycles} cycles ({sum(c.calls for c in clients)} mutations) in {elapsed:.1f}s; "
        f"{kills} SIGKILLs, {downtime:.1f}s down in all; {retries} retries {dict(reasons)}; "
        f"{answered_from_record} retries answered from the idempotency record (committed, "
        "answer lost)"
    )
    print(
        f"kill9: verified {rows} cycle rows; {report.messages} messages, {report.tasks} tasks, "
        f"{report.events} events, {report.idempotency_records} idempotency records checked"
    )
    print(
        f"kill9: {len(watchers)} subscribers saw {events_checked} events exactly once in order, "
        f"after {sum(w.connects for w in watchers)} connects"
    )
    assert cycles == ROOMS * CYCLES_PER_ROOM
    assert kills >= 5, f"only {kills} kills: the run was too short to prove anything"


# An open taskAvailable waiter refreshes its role's lastSeenAt every PRESENCE_INTERVAL (15 s)
# or so; a role whose waiter died with its server must stop counting as present ("waiting =
# connected and ready for work", SPEC §2.1, §4) within a few of those intervals.
STALE_WAITER_DEADLINE = 60.0


async def test_a_crash_does_not_leave_its_waiters_marked_present(
    db: PgDatabase, start_server
) -> None:
    server = await start_server(db.url, {**NO_RATE_LIMIT, "CHATROOM_LEASE_SWEEP_SECONDS": "1"})
    token, _ = await new_owner(server)
    async with RetryingClient(server, token) as client:
        room_id = await new_room(client, "kill9: waiter")
    waiter = TaskWaiter(server, token, room_id, "builder", reconnect=False).start()
    await until(
        lambda: waiter_id(db.url, room_id, "builder"), "the builder's waiter registered", WAIT, 0.05
    )
    assert await participant_status(db.url, room_id, "builder") == "waiting"

    await server.kill()
    killed = time.monotonic()
    await waiter.stop()  # its websocket died with the server; the agent is gone too
    await server.start()

    async def not_waiting() -> bool:
        return await participant_status(db.url, room_id, "builder") != "waiting"

    try:
        await until(not_waiting, "", STALE_WAITER_DEADLINE, 0.5)
    except AssertionError:
        raise AssertionError(
            f"{STALE_WAITER_DEADLINE:.0f}s after its server was SIGKILLed, the builder whose "
            "only waiter died with it is still WAITING (present, ready for work); nothing "
            "ever clears a dead process's waiters"
        ) from None
    print(f"\nkill9: the dead waiter's role stopped counting as present after "
          f"{time.monotonic() - killed:.1f}s")  # fmt: skip


async def participant_status(url: str, room_id: str, role: str) -> str:
    return str(
        await dbutil.fetchval(
            url,
            "SELECT status FROM participants WHERE chatroom_id = $1 AND role = $2",
            uuid.UUID(room_id),
            role,
        )
    )
