"""Idempotency keys through the real server (SPEC §2.4): a retry with the same key gets the first
result and writes nothing; the same key with another input is IDEMPOTENCY_KEY_REUSED and
changes nothing; concurrent retries write once; a refused request consumes no key."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.common import concurrently
from tests.support import dbutil, documents
from tests.support.api import Api, connect, new_user
from tests.support.gql_client import expect_error
from tests.support.pg import PgDatabase
from tests.support.room_rows import db_room_state, db_tasks
from tests.support.server import LiveServer

CONCURRENT = 10


async def records(url: str, user_id: str, operation: str, key: str) -> list[dict[str, Any]]:
    rows = await dbutil.fetch(
        url,
        "SELECT * FROM idempotency_records WHERE user_id = $1 AND operation = $2 AND key = $3",
        uuid.UUID(user_id),
        operation,
        key,
    )
    return [dict(r) for r in rows]


async def rooms_named(url: str, user_id: str, name: str) -> int:
    return int(
        await dbutil.fetchval(
            url,
            "SELECT count(*) FROM chatrooms WHERE owner_id = $1 AND name = $2",
            uuid.UUID(user_id),
            name,
        )
    )


async def room_state(api: Api, url: str, rid: str) -> dict[str, Any]:
    room = await api.room(rid)
    return {
        "db": await db_room_state(url, rid),
        "tasks": await api.tasks(rid),
        "messages": await api.all_messages(rid),
        "room": room,
    }


# --- createChatroom ----------------------------------------------------------------------------


async def test_create_chatroom_key(live_server: LiveServer, module_db: PgDatabase) -> None:
    token, user = await new_user(live_server)
    url = module_db.url
    async with connect(live_server, token) as api:
        first = await api.create_room(name="keyed room", idempotencyKey="room-1")
        again = await api.create_room(name="keyed room", idempotencyKey="room-1")
        assert again == first
        assert await rooms_named(url, user, "keyed room") == 1
        assert len(await records(url, user, "createChatroom", "room-1")) == 1

        # Same key, different input: refused, nothing created.
        code, message = await expect_error(
            api.create_room(name="another room", idempotencyKey="room-1")
        )
        assert code == "IDEMPOTENCY_KEY_REUSED"
        assert "room-1" in message
        code, _ = await expect_error(
            api.create_room(teamId="squad", name="keyed room", idempotencyKey="room-1")
        )
        assert code == "IDEMPOTENCY_KEY_REUSED"
        assert await rooms_named(url, user, "another room") == 0
        assert await rooms_named(url, user, "keyed room") == 1

        # Without a key every call acts.
        await api.create_room(name="unkeyed")
        await api.create_room(name="unkeyed")
        assert await rooms_named(url, user, "unkeyed") == 2

    # The same key, concurrently: one room, every caller gets it.
    async def create(c: Api, _i: int) -> dict:
        return await c.create_room(name="raced room", idempotencyKey="room-race")

    results = await concurrently(live_server, token, CONCURRENT, create)
    assert all(kind == "ok" for kind, _ in results), results
    assert all(r == results[0][1] for _, r in results)  # one result, field for field
    assert len({r["id"] for _, r in results}) == 1
    assert await rooms_named(url, user, "raced room") == 1
    assert len(await records(url, user, "createChatroom", "room-race")) == 1


async def test_keys_belong_to_their_user(live_server: LiveServer, module_db: PgDatabase) -> None:
    token_a, user_a = await new_user(live_server, "a")
    token_b, user_b = await new_user(live_server, "b")
    async with connect(live_server, token_a) as a, connect(live_server, token_b) as b:
        room_a = await a.create_room(name="shared key", idempotencyKey="same-key")
        room_b = await b.create_room(name="shared key", idempotencyKey="same-key")
    assert room_a["id"] != room_b["id"]
    assert await rooms_named(module_db.url, user_a, "shared key") == 1
    assert await rooms_named(module_db.url, user_b, "shared key") == 1


# --- sendMessage -------------------------------------------------------------------------------


async def test_send_message_key(live_server: LiveServer, module_db: PgDatabase) -> None:
    token, user = await new_user(live_server)
    url = module_db.url
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="keyed messages"))["id"]
        first = await api.send(rid, "do the thing", idempotencyKey="msg-1")
        state = await room_state(api, url, rid)
        again = await api.send(rid, "do the thing", idempotencyKey="msg-1")
        assert again == first  # the first result, field for field
        assert again["message"]["seq"] == 1
        assert again["task"]["originMessage"]["id"] == first["message"]["id"]
        assert await room_state(api, url, rid) == state  # a replay writes nothing
        assert len(state["db"]["messages"]) == 1
        assert len(state["db"]["tasks"]) == 1

        for changed in (
            {"content": "do another thing"},
            {"content": "do the thing", "senderRole": "builder"},
            {"content": "do the thing", "targetRole": "reviewer"},
        ):
            code, _ = await expect_error(api.send(rid, idempotencyKey="msg-1", **changed))
            assert code == "IDEMPOTENCY_KEY_REUSED", changed
        other_room = (await api.create_room(name="other"))["id"]
        code, _ = await expect_error(api.send(other_room, "do the thing", idempotencyKey="msg-1"))
        assert code == "IDEMPOTENCY_KEY_REUSED"
        assert await room_state(api, url, rid) == state
        assert (await api.counts(other_room))["pending"] == 0

    async def send(c: Api, _i: int) -> dict:
        return await c.send(rid, "raced request", idempotencyKey="msg-race")

    results = await concurrently(live_server, token, CONCURRENT, send)
    assert all(kind == "ok" for kind, _ in results), results
    assert all(r == results[0][1] for _, r in results)  # one result, field for field
    assert len({r["message"]["id"] for _, r in results}) == 1
    assert len({r["task"]["id"] for _, r in results}) == 1
    assert {r["task"]["status"] for _, r in results} == {"QUEUED"}
    db = await db_room_state(url, rid)
    assert [m["content"] for m in db["messages"]] == ["do the thing", "raced request"]
    assert len(db["tasks"]) == 2
    assert len(await records(url, user, "sendMessage", "msg-race")) == 1


# --- sendHandoff -------------------------------------------------------------------------------


async def test_send_handoff_key(live_server: LiveServer, module_db: PgDatabase) -> None:
    token, user = await new_user(live_server)
    url = module_db.url
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="keyed handoffs"))["id"]
        await api.request_and_claim(rid, "build it")
        first = await api.handoff(rid, "builder", "reviewer", "built", idempotencyKey="h-1")
        state = await room_state(api, url, rid)
        again = await api.handoff(rid, "builder", "reviewer", "built", idempotencyKey="h-1")
        assert again == first  # the first result, field for field
        assert again["newTask"]["sourceMessage"]["id"] == first["message"]["id"]
        assert again["newTask"]["originMessage"] is not None
        assert await room_state(api, url, rid) == state
        handoffs = [m for m in state["db"]["messages"] if m["type"] == "handoff"]
        assert len(handoffs) == 1

        for changed in (
            {"sender": "builder", "target": "reviewer", "content": "built, v2"},
            {"sender": "builder", "target": "user", "content": "built"},
        ):
            code, _ = await expect_error(api.handoff(rid, idempotencyKey="h-1", **changed))
            assert code == "IDEMPOTENCY_KEY_REUSED", changed
        assert await room_state(api, url, rid) == state

        # Without the key the same call is refused: the builder no longer holds a task.
        code, _ = await expect_error(api.handoff(rid, "builder", "reviewer", "built"))
        assert code == "NOT_TASK_HOLDER"

        # The same key concurrently: one handoff, every caller gets it.
        assert (await api.claim(rid, first["newTask"]["id"], "reviewer"))["success"]

        async def handoff(c: Api, _i: int) -> dict:
            return await c.handoff(
                rid, "reviewer", "builder", "fix the tests", idempotencyKey="h-2"
            )

        results = await concurrently(live_server, token, CONCURRENT, handoff)
        assert all(kind == "ok" for kind, _ in results), results
        assert all(r == results[0][1] for _, r in results)  # one result, field for field
        assert len({r["message"]["id"] for _, r in results}) == 1
        assert len({r["newTask"]["id"] for _, r in results}) == 1
        db = await db_room_state(url, rid)
        from_reviewer = [m for m in db["messages"] if m["sender_role"] == "reviewer"]
        assert len(from_reviewer) == 1
        assert sorted(t["status"] for t in db["tasks"]) == ["completed", "completed", "pending"]
        assert len(await records(url, user, "sendHandoff", "h-2")) == 1


async def test_refused_handoff_does_not_consume_its_key(
    live_server: LiveServer, module_db: PgDatabase
) -> None:
    token, user = await new_user(live_server)
    url = module_db.url
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="refused then fixed"))["id"]
        await api.request_and_claim(rid, "new feature")
        await api.classify(rid, "builder", "NEW_FEATURE")
        state = await room_state(api, url, rid)

        code, _ = await expect_error(
            api.handoff(rid, "builder", "user", "done", idempotencyKey="fix-1")
        )
        assert code == "HANDOFF_NOT_ALLOWED"
        assert await records(url, user, "sendHandoff", "fix-1") == []
        assert await room_state(api, url, rid) == state
        # Refused again on retry (not replayed as a success, not KEY_REUSED).
        code, _ = await expect_error(
            api.handoff(rid, "builder", "user", "done", idempotencyKey="fix-1")
        )
        assert code == "HANDOFF_NOT_ALLOWED"

        # The key was not consumed: the corrected request (a new input) succeeds under it.
        fixed = await api.handoff(
            rid, "builder", "reviewer", "please review", idempotencyKey="fix-1"
        )
        assert fixed["newTask"]["assignedTo"] == "reviewer"
        assert len(await records(url, user, "sendHandoff", "fix-1")) == 1
        replay = await api.handoff(
            rid, "builder", "reviewer", "please review", idempotencyKey="fix-1"
        )
        assert replay["message"]["id"] == fixed["message"]["id"]
        # Now the key is bound to the corrected request.
        code, _ = await expect_error(
            api.handoff(rid, "builder", "user", "done", idempotencyKey="fix-1")
        )
        assert code == "IDEMPOTENCY_KEY_REUSED"

        # Same for sendMessage: refused in a completed room, the key stays free.
        done_room = (await api.create_room(name="completed"))["id"]
        await api.execute(documents.COMPLETE_ROOM, c=done_room)
        code, _ = await expect_error(api.send(done_room, "late", idempotencyKey="late-1"))
        assert code == "CONFLICT"
        assert await records(url, user, "sendMessage", "late-1") == []
        sent = await api.send(rid, "queued instead", idempotencyKey="late-1")
        assert sent["task"]["status"] == "QUEUED"


# --- claimTask ---------------------------------------------------------------------------------


async def test_claim_task_key(live_server: LiveServer, module_db: PgDatabase) -> None:
    token, _user = await new_user(live_server)
    url = module_db.url
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="keyed claims"))["id"]
        task = (await api.send(rid, "claim me"))["task"]
        first = await api.claim(rid, task["id"], "builder", idempotencyKey="c-1")
        assert first["success"] is True
        state = await room_state(api, url, rid)
        again = await api.claim(rid, task["id"], "builder", idempotencyKey="c-1")
        assert again["success"] is True  # the winner's retry is still a win
        assert again == first  # the first result, field for field
        assert again["task"]["attempt"] == 1
        assert again["task"]["originMessage"]["id"] == first["message"]["id"]
        assert await room_state(api, url, rid) == state

        # A retry WITHOUT the key is a new claim, which loses (the task is taken).
        unkeyed = await api.claim(rid, task["id"], "builder")
        assert unkeyed["success"] is False
        assert unkeyed["task"]["attempt"] == 1

        # Same key, different input.
        code, _ = await expect_error(api.claim(rid, task["id"], "reviewer", idempotencyKey="c-1"))
        assert code == "IDEMPOTENCY_KEY_REUSED"
        other = (await api.create_room(name="other claims"))["id"]
        other_task = (await api.send(other, "other"))["task"]
        code, _ = await expect_error(
            api.claim(other, other_task["id"], "builder", idempotencyKey="c-1")
        )
        assert code == "IDEMPOTENCY_KEY_REUSED"
        assert (await api.tasks(other))[0]["status"] == "PENDING"
        assert await room_state(api, url, rid) == state

        # Long after (the task completed, the baton moved on) the winner's retry still wins.
        await api.handoff(rid, "builder", "reviewer", "done")
        late = await api.claim(rid, task["id"], "builder", idempotencyKey="c-1")
        assert late["success"] is True
        assert late["task"]["status"] == "IN_PROGRESS"  # the first result, as it was
        rows = {str(r["id"]): r for r in await db_tasks(url, rid)}
        assert (rows[task["id"]]["status"], rows[task["id"]]["attempt"]) == ("completed", 1)


async def test_claim_task_key_concurrently(live_server: LiveServer, module_db: PgDatabase) -> None:
    token, user = await new_user(live_server)
    url = module_db.url
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="concurrent keyed claims"))["id"]
        task = (await api.send(rid, "claim me"))["task"]

    # One process retrying one claim: every copy gets the same win, the task is claimed once.
    async def same_key(c: Api, _i: int) -> dict:
        return await c.claim(rid, task["id"], "builder", idempotencyKey="cc-same")

    results = await concurrently(live_server, token, CONCURRENT, same_key)
    assert all(kind == "ok" for kind, _ in results), results
    assert all(r == results[0][1] for _, r in results)  # one result, field for field
    assert all(r["success"] is True for _, r in results)
    assert {r["task"]["attempt"] for _, r in results} == {1}
    rows = await db_tasks(url, rid)
    assert [(r["status"], r["attempt"]) for r in rows] == [("in_progress", 1)]
    assert len(await records(url, user, "claimTask", "cc-same")) == 1

    # Ten processes, ten keys: one winner; each retry gets its own first answer back.
    async with connect(live_server, token) as api:
        await api.handoff(rid, "builder", "user", "answered")
        task = (await api.send(rid, "claim me too"))["task"]

    async def own_key(c: Api, i: int) -> dict:
        return await c.claim(rid, task["id"], "builder", idempotencyKey=f"cc-{i}")

    results = await concurrently(live_server, token, CONCURRENT, own_key)
    assert all(kind == "ok" for kind, _ in results), results
    winners = [i for i, (_, r) in enumerate(results) if r["success"]]
    assert len(winners) == 1
    retried = await concurrently(live_server, token, CONCURRENT, own_key)
    assert [r for _, r in retried] == [r for _, r in results]  # each its own first answer
    by_id = {str(r["id"]): r for r in await db_tasks(url, rid)}
    assert (by_id[task["id"]]["status"], by_id[task["id"]]["attempt"]) == ("in_progress", 1)
