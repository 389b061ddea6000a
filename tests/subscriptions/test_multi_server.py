"""Two server processes on one database (SPEC §4): an event committed through either reaches
subscribers on both, and "one waiter per role" holds across processes."""

from __future__ import annotations

from tests.subscriptions.common import (
    delivery,
    events_through,
    new_room,
    room_events,
    task_available,
    waiting,
)
from tests.support.api import connect
from tests.support.gql_client import Subprotocol
from tests.support.pg import PgDatabase
from tests.support.room_rows import db_statuses


async def test_a_change_made_through_one_server_is_delivered_by_the_other(
    db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    # db before start_server: the servers stop before their database is dropped.
    a_srv = await start_server(db.url)
    b_srv = await start_server(db.url)
    token, rid = await new_room(a_srv)
    async with connect(a_srv, token) as via_a, connect(b_srv, token) as via_b:
        start = await via_b.last_event_seq(rid)
        async with (
            task_available(a_srv, token, protocol, rid, "builder") as builder_on_a,
            task_available(b_srv, token, protocol, rid, "reviewer") as reviewer_on_b,
            room_events(a_srv, token, protocol, rid, after_seq=start) as feed_on_a,
            room_events(b_srv, token, protocol, rid, after_seq=start) as feed_on_b,
        ):
            # Presence read through the other process.
            await via_b.wait_status(rid, "builder", "WAITING")
            await via_a.wait_status(rid, "reviewer", "WAITING")

            # B -> a waiter on A.
            sent = await via_b.send(rid, "made on B")
            got = await delivery(builder_on_a)
            assert (got["kind"], got["task"]["id"]) == ("TASK", sent["task"]["id"])
            assert got["message"]["id"] == sent["message"]["id"]
            assert (await via_a.claim(rid, sent["task"]["id"], "builder"))["success"] is True

            # A -> a waiter on B.
            handed = await via_a.handoff(rid, "builder", "reviewer", "review, please")
            got = await delivery(reviewer_on_b)
            assert (got["kind"], got["task"]["id"]) == ("TASK", handed["newTask"]["id"])
            assert got["task"]["assignedTo"] == "reviewer"

            # Both feeds see the same log, whichever process wrote it.
            end = await via_a.last_event_seq(rid)
            on_a = await events_through(feed_on_a, end)
            on_b = await events_through(feed_on_b, end)
            assert [e["seq"] for e in on_a] == list(range(start + 1, end + 1))
            assert [(e["seq"], e["kind"]) for e in on_b] == [(e["seq"], e["kind"]) for e in on_a]
            await feed_on_a.expect_nothing(0.2)
            await feed_on_b.expect_nothing(0.1)


async def test_a_waiter_on_one_server_is_superseded_by_a_waiter_on_the_other(
    db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    a_srv = await start_server(db.url)
    b_srv = await start_server(db.url)
    token, rid = await new_room(a_srv)
    async with (
        connect(a_srv, token) as via_a,
        waiting(a_srv, token, protocol, rid, "builder") as (on_a,),
    ):
        async with task_available(b_srv, token, protocol, rid, "builder") as on_b:
            got = await delivery(on_a)
            assert got == {"kind": "SUPERSEDED", "resumed": False, "task": None, "message": None}
            await on_a.expect_end()
            # A's clean-up must leave B's waiter present.
            assert (await via_a.statuses(rid))["builder"] == "WAITING"
            sent = await via_a.send(rid, "for the waiter on B")
            got = await delivery(on_b)
            assert (got["kind"], got["task"]["id"]) == ("TASK", sent["task"]["id"])

            # And back: a new waiter on A supersedes the one on B.
            async with task_available(a_srv, token, protocol, rid, "builder") as again_on_a:
                assert (await delivery(on_b))["kind"] == "SUPERSEDED"
                await on_b.expect_end()
                got = await delivery(again_on_a)
                assert (got["kind"], got["task"]["id"]) == ("TASK", sent["task"]["id"])
                assert (await via_a.statuses(rid))["builder"] == "WAITING"
        await via_a.wait_status(rid, "builder", "IDLE")
    assert (await db_statuses(db.url, rid))["builder"] == "idle"


async def test_an_interrupt_through_one_server_reaches_waiters_on_both(
    db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    a_srv = await start_server(db.url)
    b_srv = await start_server(db.url)
    token, rid = await new_room(a_srv)
    async with (
        connect(b_srv, token) as via_b,
        task_available(a_srv, token, protocol, rid, "builder") as builder_on_a,
        task_available(b_srv, token, protocol, rid, "reviewer") as reviewer_on_b,
    ):
        await via_b.wait_status(rid, "builder", "WAITING")
        await via_b.wait_status(rid, "reviewer", "WAITING")
        await via_b.interrupt(rid)
        for stream in (builder_on_a, reviewer_on_b):
            got = await delivery(stream)
            assert (got["kind"], got["message"]["type"]) == ("INTERRUPT", "INTERRUPT")
            await stream.expect_end()
        assert await via_b.statuses(rid) == {"builder": "IDLE", "reviewer": "IDLE"}
