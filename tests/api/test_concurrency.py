"""Races through the real server: many HTTP clients at once, each on its own connection, and
the database's own enforcement of the baton rule (SPEC §2.3, §2.4)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import asyncpg
import pytest

from tests.api.common import concurrently
from tests.support import dbutil, documents
from tests.support.api import Api, connect, new_token
from tests.support.pg import PgDatabase
from tests.support.room_rows import db_event_seqs, db_messages, db_statuses, db_tasks
from tests.support.server import LiveServer

CLAIMERS = 50
HANDOFFS = 20
SENDERS = 30
ROUNDS = 3
ONE_ACTIVE = "uq_tasks_one_active_per_room"
COUNT_ACTIVE = (
    "SELECT count(*) FROM tasks WHERE chatroom_id = $1 AND status IN ('pending', 'in_progress')"
)


async def test_exactly_one_of_many_concurrent_claims_wins(
    live_server: LiveServer, module_db: PgDatabase
) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="claim race"))["id"]
        for round_no in range(ROUNDS):
            task = (await api.send(rid, f"request {round_no}"))["task"]
            assert task["status"] == "PENDING"

            async def claim(c: Api, _i: int, tid: str = task["id"]) -> dict:
                return await c.claim(rid, tid, "builder")

            results = await concurrently(live_server, token, CLAIMERS, claim)
            assert all(kind == "ok" for kind, _ in results), results
            wins = [r for _, r in results if r["success"]]
            losses = [r for _, r in results if not r["success"]]
            assert (len(wins), len(losses)) == (1, CLAIMERS - 1)
            assert wins[0]["task"]["status"] == "IN_PROGRESS"
            assert wins[0]["task"]["attempt"] == 1
            assert wins[0]["participant"] == {"role": "builder", "status": "ACTIVE"}
            for lost in losses:
                # Losing is not an error: the task as it now is, held by the winner.
                assert lost["task"]["id"] == task["id"]
                assert lost["task"]["status"] == "IN_PROGRESS"
                assert lost["task"]["attempt"] == 1
                assert lost["participant"] is None

            rows = await db_tasks(module_db.url, rid)
            active = [r for r in rows if r["status"] in ("pending", "in_progress")]
            assert [(str(r["id"]), r["status"], r["attempt"]) for r in active] == [
                (task["id"], "in_progress", 1)
            ]
            participants = await db_statuses(module_db.url, rid)
            assert list(participants.values()).count("active") == 1
            assert participants["builder"] == "active"
            claimed = await dbutil.fetchval(
                module_db.url,
                "SELECT count(*) FROM messages"
                " WHERE chatroom_id = $1 AND claimed_by_role IS NOT NULL",
                uuid.UUID(rid),
            )
            assert claimed == round_no + 1
            # Release the baton for the next round (an unclassified request may go back).
            await api.handoff(rid, "builder", "user", f"answered {round_no}")

        rows = await db_tasks(module_db.url, rid)
        assert [(r["status"], r["attempt"]) for r in rows] == [("completed", 1)] * ROUNDS


async def test_exactly_one_of_many_concurrent_handoffs_wins(
    live_server: LiveServer, module_db: PgDatabase
) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="handoff race"))["id"]
        sent, claimed = await api.request_and_claim(rid, "build it")
        tasks_before = len(await db_tasks(module_db.url, rid))

        async def handoff(c: Api, i: int) -> dict:
            return await c.handoff(rid, "builder", "reviewer", f"handoff number {i}")

        results = await concurrently(live_server, token, HANDOFFS, handoff)
        kinds = Counter(kind for kind, _ in results)
        assert kinds == {"ok": 1, "error": HANDOFFS - 1}, results
        assert Counter(code for kind, code in results if kind == "error") == {
            "NOT_TASK_HOLDER": HANDOFFS - 1
        }
        won = next(r for kind, r in results if kind == "ok")
        assert [t["id"] for t in won["completedTasks"]] == [claimed["task"]["id"]]
        assert won["newTask"]["status"] == "PENDING"
        assert won["newTask"]["originMessage"]["id"] == sent["message"]["id"]

    messages = await db_messages(module_db.url, rid)
    handoffs = [m for m in messages if m["type"] == "handoff"]
    assert len(handoffs) == 1
    assert handoffs[0]["content"] == won["message"]["content"]
    rows = await db_tasks(module_db.url, rid)
    assert len(rows) == tasks_before + 1
    assert sorted(r["status"] for r in rows) == ["completed", "pending"]
    new = [r for r in rows if r["status"] == "pending"]
    assert [(str(r["id"]), r["assigned_to"]) for r in new] == [(won["newTask"]["id"], "reviewer")]
    assert (await db_statuses(module_db.url, rid))["builder"] == "waiting"


async def test_concurrent_user_messages_queue_without_gaps(
    live_server: LiveServer, module_db: PgDatabase
) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="message race"))["id"]

        async def send(c: Api, i: int) -> dict:
            return await c.send(rid, f"request {i}")

        results = await concurrently(live_server, token, SENDERS, send)
        assert all(kind == "ok" for kind, _ in results), results
        outcomes = [r for _, r in results]
        statuses = Counter(r["task"]["status"] for r in outcomes)
        assert statuses == {"PENDING": 1, "QUEUED": SENDERS - 1}
        positions = sorted(
            r["task"]["queuePosition"] for r in outcomes if r["task"]["queuePosition"]
        )
        assert positions == list(range(1, SENDERS))
        assert sorted(r["message"]["seq"] for r in outcomes) == list(range(1, SENDERS + 1))

        listed = await api.tasks(rid, ["QUEUED"])
        assert [t["queuePosition"] for t in listed] == list(range(1, SENDERS))
        room = await api.room(rid)

    messages = await db_messages(module_db.url, rid)
    assert [m["seq"] for m in messages] == list(range(1, SENDERS + 1))
    rows = {r["id"]: r for r in await db_tasks(module_db.url, rid)}
    # The queue is in arrival order: the first message took the baton, the rest queued in seq order.
    by_seq = [rows[m["task_id"]] for m in messages]
    assert by_seq[0]["status"] == "pending"
    assert [t["queue_position"] for t in by_seq[1:]] == list(range(1, SENDERS))
    assert all(t["status"] == "queued" for t in by_seq[1:])
    events = await db_event_seqs(module_db.url, rid)
    assert events == list(range(1, len(events) + 1))
    assert events[-1] == room["lastEventSeq"]


async def test_handoff_to_user_racing_user_messages_never_loses_the_baton(
    live_server: LiveServer, module_db: PgDatabase
) -> None:
    """The holder returns to the user while requests pour in: whichever commit first, exactly
    one task ends up pending, and it is the earliest of the new requests (queue order is
    arrival order, whether a request queued before the handoff or arrived after it)."""
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="mixed race"))["id"]
        first, claimed = await api.request_and_claim(rid, "the running request")

        async def op(c: Api, i: int) -> dict:
            if i == 0:
                return await c.handoff(rid, "builder", "user", "answered")
            return await c.send(rid, f"request {i}")

        results = await concurrently(live_server, token, SENDERS, op)
        assert all(kind == "ok" for kind, _ in results), results

    rows = {r["id"]: r for r in await db_tasks(module_db.url, rid)}
    messages = await db_messages(module_db.url, rid)
    new_requests = [m for m in messages if m["type"] == "message" and m["seq"] > 1]
    assert len(new_requests) == SENDERS - 1
    new_tasks = [rows[m["task_id"]] for m in new_requests]  # in seq (arrival) order
    assert [t["status"] for t in new_tasks] == ["pending"] + ["queued"] * (SENDERS - 2)
    positions = [t["queue_position"] for t in new_tasks[1:]]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert rows[uuid.UUID(claimed["task"]["id"])]["status"] == "completed"
    active = [r for r in rows.values() if r["status"] in ("pending", "in_progress")]
    assert len(active) == 1
    events = await db_event_seqs(module_db.url, rid)
    assert events == list(range(1, len(events) + 1))
    assert first["message"]["seq"] == 1


# --- the database itself enforces the baton rule ---------------------------------------------


async def _room_with_tasks(api: Api, *, pending: bool, backlog: int) -> tuple[str, list[str]]:
    rid = (await api.create_room(name="raw sql"))["id"]
    if pending:
        await api.send(rid, "the active one")
    ids = []
    for n in range(backlog):
        data = await api.execute(
            documents.ADD_BACKLOG, input={"chatroomId": rid, "content": f"backlog {n}"}
        )
        ids.append(data["addBacklogTask"]["id"])
    return rid, ids


INSERT_TASK = """
INSERT INTO tasks (id, chatroom_id, status, content, created_by, attempt, created_at, updated_at)
VALUES ($1, $2, $3, 'raw', 'user', 0, now(), now())
"""


async def test_database_refuses_a_second_active_task(
    live_server: LiveServer, module_db: PgDatabase
) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid, (backlog_id,) = await _room_with_tasks(api, pending=True, backlog=1)
    room = uuid.UUID(rid)
    conn = await asyncpg.connect(module_db.dsn)
    try:
        for status in ("pending", "in_progress"):
            with pytest.raises(asyncpg.UniqueViolationError) as caught:
                await conn.execute(INSERT_TASK, uuid.uuid4(), room, status)
            assert caught.value.constraint_name == ONE_ACTIVE
            with pytest.raises(asyncpg.UniqueViolationError) as caught:
                await conn.execute(
                    "UPDATE tasks SET status = $1 WHERE id = $2", status, uuid.UUID(backlog_id)
                )
            assert caught.value.constraint_name == ONE_ACTIVE
        # Other statuses are not limited.
        await conn.execute(INSERT_TASK, uuid.uuid4(), room, "queued")
        active = await conn.fetchval(
            COUNT_ACTIVE,
            room,
        )
        assert active == 1
    finally:
        await conn.close()


@pytest.mark.parametrize("how", ["update", "insert"])
async def test_two_concurrent_transactions_cannot_both_take_the_baton(
    live_server: LiveServer, module_db: PgDatabase, how: str
) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid, backlog_ids = await _room_with_tasks(api, pending=False, backlog=2)
    room = uuid.UUID(rid)
    conns = [await asyncpg.connect(module_db.dsn) for _ in range(2)]
    barrier = asyncio.Barrier(2)

    async def take_baton(conn: asyncpg.Connection, task_id: str) -> str:
        async with conn.transaction():
            await barrier.wait()  # both transactions are open before either writes
            if how == "update":
                await conn.execute(
                    "UPDATE tasks SET status = 'pending' WHERE id = $1", uuid.UUID(task_id)
                )
            else:
                await conn.execute(INSERT_TASK, uuid.uuid4(), room, "pending")
            await asyncio.sleep(0.3)  # hold the uncommitted row while the other one tries
        return "committed"

    try:
        results = await asyncio.gather(
            *(take_baton(c, t) for c, t in zip(conns, backlog_ids, strict=True)),
            return_exceptions=True,
        )
    finally:
        for c in conns:
            await c.close()
    committed = [r for r in results if r == "committed"]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(committed) == 1, results
    assert len(failed) == 1, results
    assert isinstance(failed[0], asyncpg.UniqueViolationError)
    assert failed[0].constraint_name == ONE_ACTIVE
    active = await dbutil.fetchval(
        module_db.url,
        COUNT_ACTIVE,
        room,
    )
    assert active == 1
