"""roomEvents resumes exactly where a client stopped (SPEC §4): read up to seq N, disconnect,
commit more changes, reconnect with afterSeq=N -> exactly the missed events, in order, no
duplicates, each showing the change as it happened; then the feed follows live."""

from __future__ import annotations

import asyncio
import json
import time

from tests.subscriptions.common import (
    event,
    events_through,
    new_room,
    room_events,
    waiting,
)
from tests.support.api import connect
from tests.support.gql_client import Subprotocol
from tests.support.pg import PgDatabase
from tests.support.room_rows import db_events
from tests.support.server import LiveServer

# More than one read batch of the server (delivery.EVENT_BATCH = 500).
MANY_EVENTS = 520
WRITERS = 8
# Filling a room quickly must not trip the per-token mutation rate limit.
NO_RATE_LIMIT = {"CHATROOM_MUTATIONS_PER_SECOND": "0"}


def _payload(row: dict) -> dict:
    value = row["payload"]
    return json.loads(value) if isinstance(value, str) else value


async def test_reconnecting_with_after_seq_replays_exactly_the_missed_events(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with connect(live_server, token) as a:
        # First connection: the whole log so far, then some live changes.
        async with room_events(live_server, token, protocol, rid, after_seq=0) as feed:
            sent = await a.send(rid, "first request")
            n = await a.last_event_seq(rid)
            seen = await events_through(feed, n)
            assert [e["seq"] for e in seen] == list(range(1, n + 1))
            await feed.expect_nothing(0.2)
        task_id = sent["task"]["id"]

        # While disconnected: a whole chain of changes.
        await a.claim(rid, task_id, "builder")
        await a.send(rid, "second request (queued)")
        handoff = await a.handoff(rid, "builder", "reviewer", "please review")
        review_id = handoff["newTask"]["id"]
        await a.claim(rid, review_id, "reviewer")
        await a.handoff(rid, "reviewer", "user", "looks good")
        m = await a.last_event_seq(rid)
        missed = await db_events(module_db.url, rid, after_seq=n)
        assert [r["seq"] for r in missed] == list(range(n + 1, m + 1))
        assert m - n >= 10

        async with room_events(live_server, token, protocol, rid, after_seq=n) as feed:
            replay = await events_through(feed, m)
            # Exactly the missed events: consecutive, in order, nothing before or twice.
            assert [e["seq"] for e in replay] == list(range(n + 1, m + 1))
            assert [e["kind"].lower() for e in replay] == [r["kind"] for r in missed]
            assert all(e["chatroomId"] == rid for e in replay)
            await feed.expect_nothing(0.3)

            # Each replayed change shows the object as that change left it, not as it is now.
            for got, row in zip(replay, missed, strict=True):
                payload = _payload(row)
                if got["kind"] in ("TASK_CREATED", "TASK_UPDATED"):
                    assert got["task"]["id"] == payload["task"]["id"]
                    assert got["task"]["status"].lower() == payload["task"]["status"]
                    assert got["task"]["attempt"] == payload["task"]["attempt"]
                if got["kind"] == "PARTICIPANT_UPDATED":
                    assert got["participant"]["role"] == payload["participant"]["role"]
                    assert got["participant"]["status"].lower() == payload["participant"]["status"]
            first_task = [
                e["task"]["status"]
                for e in replay
                if e["kind"] == "TASK_UPDATED" and e["task"]["id"] == task_id
            ]
            assert first_task == ["IN_PROGRESS", "COMPLETED"]
            review = [
                e["task"]["status"]
                for e in replay
                if e["kind"] in ("TASK_CREATED", "TASK_UPDATED") and e["task"]["id"] == review_id
            ]
            assert review == ["PENDING", "IN_PROGRESS", "COMPLETED"]
            builder = [
                e["participant"]["status"]
                for e in replay
                if e["kind"] == "PARTICIPANT_UPDATED" and e["participant"]["role"] == "builder"
            ]
            assert builder[0] == "ACTIVE"

            # After the replay the same subscription follows live.
            await a.send(rid, "live again")
            live = await events_through(feed, await a.last_event_seq(rid))
            assert [e["seq"] for e in live] == list(range(m + 1, m + 1 + len(live)))
            assert live[0]["kind"] == "MESSAGE_CREATED"


async def _fill(server: LiveServer, token: str, rid: str, events: int) -> int:
    """At least ``events`` events in the room; returns its last seq. No task is taken, so
    every message queues behind the first (a few writers at once; the room lock orders them)."""
    async with connect(server, token) as a:
        while (m := await a.last_event_seq(rid)) < events:

            async def writer(n: int) -> None:
                async with connect(server, token) as mine:
                    for _ in range(n):
                        await mine.send(rid, "more work")

            await asyncio.gather(*(writer(10) for _ in range(WRITERS)))
    return m


async def test_a_replay_longer_than_one_read_batch_has_no_gap(
    db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    server = await start_server(db.url, extra_env=NO_RATE_LIMIT)
    token, rid = await new_room(server)
    m = await _fill(server, token, rid, MANY_EVENTS)
    async with (
        connect(server, token) as a,
        room_events(server, token, protocol, rid, after_seq=7) as feed,
    ):
        t0 = time.monotonic()
        replay = await events_through(feed, m)
        print(f"\nreplayed {len(replay)} events in {time.monotonic() - t0:.2f}s")
        assert [e["seq"] for e in replay] == list(range(8, m + 1))
        await feed.expect_nothing(0.2)
        await a.send(rid, "one more")
        assert (await event(feed))["seq"] == m + 1


async def test_a_long_replay_completes_while_an_agent_waits_in_the_room(
    db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    """The common case of a web page reconnecting to a busy room: an agent's taskAvailable
    waiter is open in the same process (so this process has already seen the room's newest
    notification), and the page resumes more than one read batch behind. Every missed event
    must arrive without waiting for a new change in the room."""
    server = await start_server(db.url, extra_env=NO_RATE_LIMIT)
    token, rid = await new_room(server)
    await _fill(server, token, rid, MANY_EVENTS)
    async with (
        connect(server, token) as a,
        waiting(server, token, protocol, rid, "reviewer") as (reviewer,),
    ):
        m = await a.last_event_seq(rid)  # includes the waiter's own presence event
        async with room_events(server, token, protocol, rid, after_seq=7) as feed:
            try:
                replay = await events_through(feed, m)
            except TimeoutError as exc:
                raise AssertionError(f"the replay stalled: {exc}") from None
            assert [e["seq"] for e in replay] == list(range(8, m + 1))
            await feed.expect_nothing(0.2)
        await reviewer.expect_nothing(0.1)


async def test_resuming_mid_stream_after_a_drop_loses_and_repeats_nothing(
    live_server: LiveServer, protocol: Subprotocol
) -> None:
    """A client reads part of a burst, vanishes, and resumes from the last seq it saw."""
    token, rid = await new_room(live_server)
    async with connect(live_server, token) as a:
        start = await a.last_event_seq(rid)
        received: list[int] = []
        cursor = start
        for round_no in range(4):
            async with room_events(live_server, token, protocol, rid, after_seq=cursor) as feed:
                for i in range(3):
                    await a.send(rid, f"round {round_no} message {i}")
                # Read only some of what is there, then drop the connection.
                for _ in range(4):
                    e = await event(feed)
                    received.append(e["seq"])
                    cursor = e["seq"]
        end = await a.last_event_seq(rid)
        async with room_events(live_server, token, protocol, rid, after_seq=cursor) as feed:
            received += [e["seq"] for e in await events_through(feed, end)]
            await feed.expect_nothing(0.2)
        assert received == list(range(start + 1, end + 1))
