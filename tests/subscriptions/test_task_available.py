"""taskAvailable through a real uvicorn server and the real gql websocket client, on both
subprotocols (SPEC §4): delivery before and after the task exists, one waiter per role
(SUPERSEDED), resumed delivery after a restart, one winner among concurrent claimers,
interrupts, presence (WAITING / IDLE) and refusals with a code.

Subscription start race: graphql-transport-ws has no "subscribed" ack, so a test that needs
the server-side generator registered polls chatroom.participants until the role is WAITING
(taskAvailable commits that in its first transaction, after joining the process's hub)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.subscriptions.common import delivery, new_room, task_available, waiting
from tests.support.api import connect, new_token, subscription
from tests.support.documents import ROOM_EVENTS, TASK_AVAILABLE
from tests.support.gql_client import Subprotocol
from tests.support.pg import PgDatabase
from tests.support.room_rows import db_statuses, db_task
from tests.support.server import LiveServer

CLAIMERS = 10


async def test_a_waiter_receives_a_task_created_after_it_subscribed(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with (
        connect(live_server, token) as a,
        waiting(live_server, token, protocol, rid, "builder", "reviewer") as (builder, reviewer),
    ):
        sent = await a.send(rid, "please build the login page")

        got = await delivery(builder)
        assert got["kind"] == "TASK"
        assert got["resumed"] is False
        assert got["task"]["id"] == sent["task"]["id"]
        assert got["task"]["status"] == "PENDING"
        assert got["task"]["content"] == "please build the login page"
        assert got["message"]["id"] == sent["message"]["id"]
        assert got["message"]["type"] == "MESSAGE"
        # The task goes to the entry point only; the reviewer's waiter stays quiet and open.
        await reviewer.expect_nothing(0.3)
        await builder.expect_nothing(0.1)  # delivered once, not again
        assert await a.statuses(rid) == {"builder": "WAITING", "reviewer": "WAITING"}


async def test_handoffs_and_promoted_requests_arrive_with_their_own_source_message(
    live_server: LiveServer, protocol: Subprotocol
) -> None:
    """After its first read a waiter follows the room's log: a handoff's task arrives with the
    handoff message logged beside it; a queued request promoted later arrives with its own,
    older message (read from the table), and never a task routed to another role."""
    token, rid = await new_room(live_server)
    async with (
        connect(live_server, token) as a,
        waiting(live_server, token, protocol, rid, "builder", "reviewer") as (builder, reviewer),
    ):
        first = await a.send(rid, "first request")
        assert (await delivery(builder))["task"]["id"] == first["task"]["id"]
        assert (await a.claim(rid, first["task"]["id"], "builder"))["success"] is True
        queued = await a.send(rid, "second request, queued behind the first")
        assert queued["task"]["status"] == "QUEUED"
        await builder.expect_nothing(0.3)  # queued work is not claimable yet

        built = await a.handoff(rid, "builder", "reviewer", "built it; please review")
        got = await delivery(reviewer)
        assert (got["kind"], got["resumed"]) == ("TASK", False)
        assert got["task"]["id"] == built["newTask"]["id"]
        assert (got["task"]["assignedTo"], got["task"]["status"]) == ("reviewer", "PENDING")
        assert got["message"]["id"] == built["message"]["id"]
        assert got["message"]["content"] == "built it; please review"
        assert got["task"]["sourceMessage"]["id"] == built["message"]["id"]

        assert (await a.claim(rid, got["task"]["id"], "reviewer"))["success"] is True
        await a.handoff(rid, "reviewer", "user", "approved")
        # The first request is done, so the queued one is promoted to the entry point.
        promoted = await delivery(builder)
        assert promoted["kind"] == "TASK"
        assert (promoted["task"]["id"], promoted["task"]["status"]) == (
            queued["task"]["id"],
            "PENDING",
        )
        assert promoted["message"]["id"] == queued["message"]["id"]
        assert promoted["message"]["content"] == "second request, queued behind the first"
        await reviewer.expect_nothing(0.3)
        await builder.expect_nothing(0.1)


async def test_a_waiter_arriving_after_the_task_receives_it_at_once(
    live_server: LiveServer, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with connect(live_server, token) as a:
        sent = await a.send(rid, "already here")
        async with task_available(live_server, token, protocol, rid, "builder") as builder:
            got = await delivery(builder)
            assert (got["kind"], got["resumed"]) == ("TASK", False)
            assert got["task"]["id"] == sent["task"]["id"]
            assert got["message"]["id"] == sent["message"]["id"]
            assert (await a.statuses(rid))["builder"] == "WAITING"


async def test_a_second_waiter_for_the_same_role_supersedes_the_first(
    live_server: LiveServer, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with (
        connect(live_server, token) as a,
        waiting(live_server, token, protocol, rid, "builder") as (first,),
    ):
        async with task_available(live_server, token, protocol, rid, "builder") as second:
            got = await delivery(first)
            assert got == {"kind": "SUPERSEDED", "resumed": False, "task": None, "message": None}
            await first.expect_end()
            # The superseded waiter's clean-up must not mark the role absent: the newer
            # waiter is still open.
            assert (await a.statuses(rid))["builder"] == "WAITING"
            sent = await a.send(rid, "for the newer waiter")
            got = await delivery(second)
            assert (got["kind"], got["task"]["id"]) == ("TASK", sent["task"]["id"])
        # The newer waiter ended without claiming: the role is no longer waiting.
        await a.wait_status(rid, "builder", "IDLE")


async def test_a_restarted_agent_gets_its_in_progress_task_back_resumed(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with connect(live_server, token) as a:
        async with task_available(live_server, token, protocol, rid, "builder") as before:
            await a.wait_status(rid, "builder", "WAITING")
            sent = await a.send(rid, "long job")
            task_id = (await delivery(before))["task"]["id"]
            claimed = await a.claim(rid, task_id, "builder")
            assert claimed["success"] is True
            # The waiter whose delivery led to the claim is not sent the task again.
            await before.expect_nothing(0.3)
        # The agent's process died and came back: a fresh waiter.
        assert (await a.statuses(rid))["builder"] == "ACTIVE"
        async with task_available(live_server, token, protocol, rid, "builder") as after:
            got = await delivery(after)
            assert got["kind"] == "TASK"
            assert got["resumed"] is True
            assert got["task"]["id"] == task_id
            assert got["task"]["status"] == "IN_PROGRESS"
            assert got["task"]["assignedTo"] == "builder"
            assert got["task"]["attempt"] == 1
            assert got["message"]["id"] == sent["message"]["id"]
            assert (await a.statuses(rid))["builder"] == "ACTIVE"
            await after.expect_nothing(0.2)
            # The resumed agent can finish the work it holds.
            done = await a.handoff(rid, "builder", "reviewer", "implemented")
            assert [t["id"] for t in done["completedTasks"]] == [task_id]
        row = await db_task(module_db.url, task_id)
        assert (row["status"], row["attempt"]) == ("completed", 1)


async def test_concurrent_claims_of_a_delivered_task_have_exactly_one_winner(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with (
        connect(live_server, token) as a,
        waiting(live_server, token, protocol, rid, "builder") as (waiter,),
    ):
        await a.send(rid, "only one may take this")
        task_id = (await delivery(waiter))["task"]["id"]

        barrier = asyncio.Barrier(CLAIMERS)

        async def claim() -> dict:
            async with connect(live_server, token) as mine:  # its own HTTP client
                await barrier.wait()
                return await mine.claim(rid, task_id, "builder")

        results = await asyncio.wait_for(asyncio.gather(*(claim() for _ in range(CLAIMERS))), 30)
        winners = [r for r in results if r["success"]]
        assert len(winners) == 1, results
        assert winners[0]["participant"] == {"role": "builder", "status": "ACTIVE"}
        for r in results:
            assert r["task"]["id"] == task_id
            assert r["task"]["status"] == "IN_PROGRESS"
            assert r["task"]["attempt"] == 1
        row = await db_task(module_db.url, task_id)
        assert (row["status"], row["attempt"], row["assigned_to"]) == ("in_progress", 1, "builder")
        await waiter.expect_nothing(0.2)


async def test_an_interrupt_reaches_every_waiting_subscriber(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with (
        connect(live_server, token) as a,
        waiting(live_server, token, protocol, rid, "builder", "reviewer") as (builder, reviewer),
    ):
        await a.interrupt(rid)
        got = [await delivery(builder), await delivery(reviewer)]
        for item in got:
            assert item["kind"] == "INTERRUPT"
            assert item["task"] is None
            assert item["message"]["type"] == "INTERRUPT"
            assert item["message"]["senderRole"] == "user"
        assert got[0]["message"]["id"] == got[1]["message"]["id"]
        # An interrupt ends the wait.
        await builder.expect_end()
        await reviewer.expect_end()
        assert await a.statuses(rid) == {"builder": "IDLE", "reviewer": "IDLE"}
    assert await db_statuses(module_db.url, rid) == {"builder": "idle", "reviewer": "idle"}


async def test_an_interrupt_stops_the_holder_and_its_task_comes_back_on_the_next_wait(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with connect(live_server, token) as a:
        sent = await a.send(rid, "to be interrupted")
        task_id = sent["task"]["id"]
        assert (await a.claim(rid, task_id, "builder"))["success"] is True
        async with task_available(live_server, token, protocol, rid, "reviewer") as reviewer:
            await a.wait_status(rid, "reviewer", "WAITING")
            await a.interrupt(rid)
            assert (await delivery(reviewer))["kind"] == "INTERRUPT"
            await reviewer.expect_end()
        assert (await db_task(module_db.url, task_id))["status"] == "pending"
        async with task_available(live_server, token, protocol, rid, "builder") as builder:
            got = await delivery(builder)
            assert (got["kind"], got["resumed"]) == ("TASK", False)
            assert (got["task"]["id"], got["task"]["status"]) == (task_id, "PENDING")


async def test_presence_is_waiting_while_subscribed_and_idle_after(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with connect(live_server, token) as a:
        assert (await a.statuses(rid))["builder"] == "IDLE"
        # Ended by the client (complete / stop), the websocket stays open.
        async with subscription(
            live_server, token, protocol, TASK_AVAILABLE, c=rid, r="builder"
        ) as sub:
            await a.wait_status(rid, "builder", "WAITING")
            await sub.close()
            await a.wait_status(rid, "builder", "IDLE")
        # Ended by closing the websocket.
        async with task_available(live_server, token, protocol, rid, "reviewer"):
            await a.wait_status(rid, "reviewer", "WAITING")
            assert (await a.statuses(rid))["builder"] == "IDLE"
        await a.wait_status(rid, "reviewer", "IDLE")
        # A delivered task that was not claimed does not keep the role present either.
        await a.send(rid, "delivered, never claimed")
        async with task_available(live_server, token, protocol, rid, "builder") as builder:
            assert (await delivery(builder))["kind"] == "TASK"
            assert (await a.statuses(rid))["builder"] == "WAITING"
        await a.wait_status(rid, "builder", "IDLE")
    assert await db_statuses(module_db.url, rid) == {"builder": "idle", "reviewer": "idle"}


async def test_unauthenticated_and_foreign_subscriptions_are_refused_with_a_code(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    owner, rid = await new_room(live_server)
    stranger = await new_token(live_server, "stranger")
    cases: list[tuple[str | None, str, dict[str, Any], str]] = [
        (None, TASK_AVAILABLE, {"c": rid, "r": "builder"}, "UNAUTHENTICATED"),
        ("chr_not-a-real-token", TASK_AVAILABLE, {"c": rid, "r": "builder"}, "UNAUTHENTICATED"),
        (stranger, TASK_AVAILABLE, {"c": rid, "r": "builder"}, "NOT_FOUND"),
        (None, ROOM_EVENTS, {"c": rid, "after": 0}, "UNAUTHENTICATED"),
        (stranger, ROOM_EVENTS, {"c": rid, "after": 0}, "NOT_FOUND"),
        (owner, TASK_AVAILABLE, {"c": rid, "r": "nobody"}, "BAD_USER_INPUT"),
        # A malformed id answers like a missing room (nothing revealed).
        (owner, TASK_AVAILABLE, {"c": "not-an-id", "r": "builder"}, "NOT_FOUND"),
    ]
    for token, doc, variables, code in cases:
        async with subscription(live_server, token, protocol, doc, **variables) as sub:
            got, message = await sub.expect_error()
            assert got == code, (token, doc[:30], variables, got, message)
            assert message
            assert "Traceback" not in message and "SELECT" not in message
    # Nothing was marked present by the refused waiters.
    assert await db_statuses(module_db.url, rid) == {"builder": "idle", "reviewer": "idle"}
