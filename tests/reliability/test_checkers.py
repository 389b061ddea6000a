"""The reliability suite's own checkers catch what they claim to catch.

A checker that never fails proves nothing: each room below gets one handoff cycle through the
real server, then one kind of damage written straight into the database, and the checks must
name it. The watcher's comparison must refuse a duplicate and a gap.
"""

from __future__ import annotations

import uuid

import pytest

from tests.reliability.common import (
    NO_RATE_LIMIT,
    EventWatcher,
    RetryingClient,
    check_invariants,
    new_owner,
    new_room,
    room_log,
    run_cycle,
    verify_cycles,
)
from tests.support import dbutil
from tests.support.pg import PgDatabase

# (damage, SQL applied to the room $1, words the violation report must contain)
DAMAGE = [
    (
        "a lost message",
        "DELETE FROM messages WHERE chatroom_id = $1 AND seq = 3",
        "message seqs not 1..",
    ),
    (
        "a counter ahead of the log",
        "UPDATE chatrooms SET last_event_seq = last_event_seq + 1 WHERE id = $1",
        "event seqs not 1..",
    ),
    (
        "a queued task without a place in the queue",
        "UPDATE tasks SET status = 'queued' WHERE chatroom_id = $1 AND created_by = 'builder'",
        "queued positions [None]",
    ),
    (
        "a change the log never saw",
        "UPDATE tasks SET status = 'cancelled' WHERE chatroom_id = $1 AND created_by = 'user'",
        "log says completed",
    ),
    (
        "a participant active without the baton",
        "UPDATE participants SET status = 'active' WHERE chatroom_id = $1 AND role = 'builder'",
        "participant builder is active",
    ),
    (
        "a stored answer naming a row that does not exist",
        "UPDATE idempotency_records SET response = jsonb_set(response, '{message,id}',"
        " to_jsonb(gen_random_uuid()::text)) WHERE key = 'chk' || $1::uuid::text || '-0-h1'",
        "-0-h1': handoff message",
    ),
]


async def test_the_checkers_name_each_kind_of_damage(db: PgDatabase, start_server) -> None:
    server = await start_server(db.url, NO_RATE_LIMIT)
    token, _ = await new_owner(server)
    rooms: list[str] = []
    async with RetryingClient(server, token) as client:
        for _ in DAMAGE:
            rid = await new_room(client, "checker")
            await run_cycle(client, rid, f"chk{rid}", 0)
            rooms.append(rid)
    for rid in rooms:
        (await check_invariants(db.url, [rid])).assert_ok()  # intact, before the damage

    for (what, sql, words), rid in zip(DAMAGE, rooms, strict=True):
        await dbutil.execute(db.url, sql, uuid.UUID(rid))
        with pytest.raises(AssertionError) as caught:
            await check_invariants(db.url, [rid])
        assert words in str(caught.value), f"{what}: not reported as {words!r}:\n{caught.value}"
    print(f"\ncheckers: {len(DAMAGE)} kinds of damage each reported")


async def test_cycle_and_watcher_checks_refuse_doubles_and_gaps(
    db: PgDatabase, start_server
) -> None:
    server = await start_server(db.url, NO_RATE_LIMIT)
    token, _ = await new_owner(server)
    async with RetryingClient(server, token) as client:
        rid = await new_room(client, "checker")
        done = [await run_cycle(client, rid, "dbl", 0)]
    await verify_cycles(db.url, rid, "dbl", done)

    log = await room_log(db.url, rid)
    watcher = EventWatcher([server], token, rid, after_seq=0, name="fake")
    watcher.events = [_as_delivered(e) for e in log]
    assert watcher.check(log) == len(log)
    watcher.events.insert(3, watcher.events[2])  # a duplicate
    watcher.seqs = [int(e["seq"]) for e in watcher.events]
    with pytest.raises(AssertionError, match="duplicates"):
        watcher.check(log)
    watcher.events = [_as_delivered(e) for e in log if e[0] != 4]  # a gap
    watcher.seqs = [int(e["seq"]) for e in watcher.events]
    with pytest.raises(AssertionError, match=r"missing \[4\]"):
        watcher.check(log)

    # The same handoff twice (a doubled step): verify_cycles names it.
    await dbutil.execute(
        db.url,
        "UPDATE messages SET content = (SELECT content FROM messages m WHERE m.chatroom_id = $1"
        " AND m.seq = 2) WHERE chatroom_id = $1 AND seq = 3",
        uuid.UUID(rid),
    )
    with pytest.raises(AssertionError, match="doubled"):
        await verify_cycles(db.url, rid, "dbl", done)


def _as_delivered(entry: tuple[int, str, str]) -> dict[str, object]:
    """A room_log entry shaped like a delivered roomEvents result."""
    seq, kind, ref = entry
    event: dict[str, object] = {"seq": seq, "kind": kind.upper()}
    if kind.startswith("message"):
        event["message"] = {"id": ref}
    elif kind.startswith("task"):
        task_id, status = ref.split()
        event["task"] = {"id": task_id, "status": status.upper()}
    elif kind == "participant_updated":
        role, status = ref.split()
        event["participant"] = {"role": role, "status": status.upper()}
    return event
