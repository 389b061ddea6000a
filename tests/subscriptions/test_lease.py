"""Lost agents (SPEC §2.7): a claim's lease lapses by itself (the server's sweeper, no call
needed), the task goes back to PENDING for the same role and is delivered to its waiter again;
the old holder's late handoff is refused; the owner can release a task by hand."""

from __future__ import annotations

import time
from datetime import datetime

from tests.subscriptions.common import delivery, new_room, waiting
from tests.support import dbutil
from tests.support.api import POLL_TIMEOUT, connect, until
from tests.support.documents import TASK
from tests.support.gql_client import Subprotocol, expect_error
from tests.support.pg import PgDatabase
from tests.support.room_rows import db_statuses, db_task
from tests.support.server import LiveServer

LEASE_S = 1.0
LEASE_ENV = {"CHATROOM_TASK_LEASE_SECONDS": "1", "CHATROOM_LEASE_SWEEP_SECONDS": "0.2"}
CLAIM_WITH_LEASE = (
    "mutation($input: ClaimTaskInput!) { claimTask(input: $input) {"
    f" success task {{ {TASK} leaseExpiresAt }} participant {{ role status }} }} }}"
)


async def _room_state(url: str, room_id: str) -> dict:
    """The committed rows a refused call must not touch."""
    tables = {}
    for table in ("tasks", "messages", "room_events", "participants"):
        rows = await dbutil.fetch(
            url, f"SELECT * FROM {table} WHERE chatroom_id = $1::uuid ORDER BY 1, 2", room_id
        )
        tables[table] = [tuple(r) for r in rows]
    return tables


async def test_a_lapsed_lease_returns_the_task_to_its_role_without_any_call(
    db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    server = await start_server(db.url, extra_env=LEASE_ENV)
    token, rid = await new_room(server)
    async with (
        connect(server, token) as a,
        waiting(server, token, protocol, rid, "builder") as (waiter,),
    ):
        sent = await a.send(rid, "a job the agent will abandon")
        task_id = sent["task"]["id"]
        assert (await delivery(waiter))["task"]["attempt"] == 0
        data = await a.execute(
            CLAIM_WITH_LEASE, input={"chatroomId": rid, "taskId": task_id, "role": "builder"}
        )
        claimed = data["claimTask"]
        assert claimed["success"] is True
        assert claimed["task"]["attempt"] == 1
        lease_end = datetime.fromisoformat(claimed["task"]["leaseExpiresAt"])
        started = datetime.fromisoformat(claimed["task"]["startedAt"])
        assert abs((lease_end - started).total_seconds() - LEASE_S) < 0.1
        claimed_at = time.monotonic()

        # No call at all from here: watch the database directly.
        async def lapsed() -> bool:
            return (await db_task(db.url, task_id))["status"] == "pending"

        await until(lapsed, "the task is pending again", within=LEASE_S + POLL_TIMEOUT)
        print(f"\nlease lapsed {time.monotonic() - claimed_at:.2f}s after the claim")
        row = await db_task(db.url, task_id)
        assert (row["assigned_to"], row["attempt"]) == ("builder", 1)
        assert row["lease_expires_at"] is None
        assert row["updated_at"] >= lease_end  # not before the lease ran out
        assert (await db_statuses(db.url, rid))["builder"] == "idle"

        # The open waiter is offered the task again: the role may resume it.
        got = await delivery(waiter)
        assert got["kind"] == "TASK"
        assert got["resumed"] is False
        assert (got["task"]["id"], got["task"]["status"]) == (task_id, "PENDING")
        assert (got["task"]["assignedTo"], got["task"]["attempt"]) == ("builder", 1)

        # The old holder comes back late: refused, nothing written.
        before = await _room_state(db.url, rid)
        code, message = await expect_error(a.handoff(rid, "builder", "reviewer", "late work"))
        assert code == "NOT_TASK_HOLDER"
        assert "claim" in message.lower()
        assert await _room_state(db.url, rid) == before

        # Claiming again is attempt 2, and then the handoff goes through.
        again = await a.claim(rid, task_id, "builder")
        assert (again["success"], again["task"]["attempt"]) == (True, 2)
        done = await a.handoff(rid, "builder", "reviewer", "finished on the second attempt")
        assert [t["id"] for t in done["completedTasks"]] == [task_id]
        assert done["completedTasks"][0]["attempt"] == 2
        assert done["newTask"]["assignedTo"] == "reviewer"
    row = await db_task(db.url, task_id)
    assert (row["status"], row["attempt"]) == ("completed", 2)


async def test_the_owner_releases_an_in_progress_task_back_to_pending(
    live_server: LiveServer, module_db: PgDatabase, protocol: Subprotocol
) -> None:
    token, rid = await new_room(live_server)
    async with (
        connect(live_server, token) as a,
        waiting(live_server, token, protocol, rid, "builder") as (waiter,),
    ):
        task_id = (await a.send(rid, "stuck work"))["task"]["id"]
        await delivery(waiter)
        assert (await a.claim(rid, task_id, "builder"))["success"] is True

        released = await a.release(rid, task_id)
        assert released["id"] == task_id
        assert released["status"] == "PENDING"
        assert (released["assignedTo"], released["attempt"]) == ("builder", 1)
        row = await db_task(module_db.url, task_id)
        assert (row["status"], row["assigned_to"], row["attempt"]) == ("pending", "builder", 1)
        assert row["lease_expires_at"] is None
        assert (await db_statuses(module_db.url, rid))["builder"] == "idle"

        got = await delivery(waiter)
        assert (got["kind"], got["task"]["id"], got["task"]["status"]) == (
            "TASK",
            task_id,
            "PENDING",
        )
        # Releasing it again is refused: it is not in progress.
        code, _ = await expect_error(a.release(rid, task_id))
        assert code == "CONFLICT"
        # The former holder's late handoff is refused; a new claim works.
        code, _ = await expect_error(a.handoff(rid, "builder", "reviewer"))
        assert code == "NOT_TASK_HOLDER"
        again = await a.claim(rid, task_id, "builder")
        assert (again["success"], again["task"]["attempt"]) == (True, 2)
