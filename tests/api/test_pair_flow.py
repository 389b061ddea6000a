"""The domain through the real API: the pair and squad chains, classification, the backlog and
the owner's controls, the feed, context windows and role prompts (SPEC §2, §3, §6)."""

from __future__ import annotations

from typing import Any

from tests.support import dbutil
from tests.support.api import Api, connect, new_token
from tests.support.documents import (
    ADD_BACKLOG,
    CANCEL,
    COMPLETE,
    COMPLETE_ROOM,
    MOVE,
    UPDATE,
)
from tests.support.gql_client import expect_error
from tests.support.operations import cli_operation
from tests.support.pg import PgDatabase
from tests.support.room_rows import db_room_state, db_statuses, db_tasks
from tests.support.server import LiveServer

CONTEXT_LIMIT = 100  # messages after the origin that a context window keeps
CONTEXT = (
    "query($c: ID!, $r: String!) { contextWindow(chatroomId: $c, role: $r) {"
    " originMessage { id seq } messages { id seq type senderRole content }"
    " task { id status assignedTo } classification truncated } }"
)
PROMPT = cli_operation("RolePrompt")


def ids(tasks: list[dict[str, Any]]) -> list[str]:
    return [t["id"] for t in tasks]


async def api_state(api: Api, room_id: str) -> dict[str, Any]:
    room = await api.room(room_id)
    return {
        "tasks": await api.tasks(room_id),
        "messages": await api.all_messages(room_id),
        "participants": room["participants"],
        "lastEventSeq": room["lastEventSeq"],
    }


async def test_pair_flow_end_to_end(live_server: LiveServer, module_db: PgDatabase) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        room = await api.create_room(name="pair flow")
        rid = room["id"]
        assert (room["teamId"], room["teamRoles"], room["entryPoint"]) == (
            "pair",
            ["builder", "reviewer"],
            "builder",
        )
        assert {p["status"] for p in room["participants"]} == {"IDLE"}

        # A user message in an idle room: a PENDING task for the entry point.
        sent = await api.send(rid, "Add a login page")
        origin, task = sent["message"], sent["task"]
        assert (origin["type"], origin["senderRole"], origin["seq"]) == ("MESSAGE", "user", 1)
        assert origin["targetRole"] == "builder"
        assert task["status"] == "PENDING"
        assert task["assignedTo"] is None and task["queuePosition"] is None
        assert task["originMessage"]["id"] == origin["id"]
        assert task["sourceMessage"]["id"] == origin["id"]
        assert ids(await api.pending(rid, "builder")) == [task["id"]]
        assert await api.pending(rid, "reviewer") == []

        # The reviewer may not take the entry point's task.
        code, message = await expect_error(api.claim(rid, task["id"], "reviewer"))
        assert code == "TASK_NOT_CLAIMABLE", message

        # The builder claims it.
        claimed = await api.claim(rid, task["id"], "builder")
        assert claimed["success"] is True
        assert claimed["task"]["status"] == "IN_PROGRESS"
        assert claimed["task"]["assignedTo"] == "builder"
        assert claimed["task"]["attempt"] == 1
        assert claimed["task"]["startedAt"] is not None
        assert claimed["participant"] == {"role": "builder", "status": "ACTIVE"}
        assert claimed["message"]["id"] == origin["id"]
        assert claimed["message"]["claimedByRole"] == "builder"
        assert await api.pending(rid, "builder") == []

        classified = await api.classify(rid, "builder", "NEW_FEATURE")
        assert classified["id"] == origin["id"]
        assert classified["classification"] == "NEW_FEATURE"
        assert classified["effectiveClassification"] == "NEW_FEATURE"

        # builder -> user is refused for a new feature, and NOTHING changes.
        before_api = await api_state(api, rid)
        before_db = await db_room_state(module_db.url, rid)
        before_all = await dbutil.snapshot_tables(module_db.url)
        code, message = await expect_error(api.handoff(rid, "builder", "user", "all done"))
        assert code == "HANDOFF_NOT_ALLOWED"
        assert "reviewer" in message
        assert await api_state(api, rid) == before_api
        assert await db_room_state(module_db.url, rid) == before_db
        assert await dbutil.snapshot_tables(module_db.url) == before_all  # no row anywhere

        # builder -> reviewer: the baton passes within the chain.
        h = await api.handoff(rid, "builder", "reviewer", "Built it, please review")
        assert h["message"]["type"] == "HANDOFF"
        assert (h["message"]["senderRole"], h["message"]["targetRole"]) == ("builder", "reviewer")
        assert h["message"]["content"] == "Built it, please review"
        assert [(t["id"], t["status"]) for t in h["completedTasks"]] == [(task["id"], "COMPLETED")]
        assert h["completedTasks"][0]["completedAt"] is not None
        review = h["newTask"]
        assert review["status"] == "PENDING"
        assert review["assignedTo"] == "reviewer"
        assert review["createdBy"] == "builder"
        assert review["originMessage"]["id"] == origin["id"]
        assert review["sourceMessage"]["id"] == h["message"]["id"]
        assert h["promotedTask"] is None
        assert h["sender"] == {"role": "builder", "status": "WAITING"}
        assert ids(await api.pending(rid, "reviewer")) == [review["id"]]
        assert await api.pending(rid, "builder") == []

        # A user message meanwhile queues.
        queued = (await api.send(rid, "Also add a logout button"))["task"]
        assert queued["status"] == "QUEUED"
        assert queued["queuePosition"] == 1
        assert await api.pending(rid, "builder") == []

        # The reviewer claims and hands back to the user: the queued request takes the baton.
        rclaim = await api.claim(rid, review["id"], "reviewer")
        assert rclaim["success"] is True and rclaim["task"]["attempt"] == 1
        assert rclaim["message"]["id"] == h["message"]["id"]
        back = await api.handoff(rid, "reviewer", "user", "Reviewed: LGTM")
        assert [t["id"] for t in back["completedTasks"]] == [review["id"]]
        assert back["newTask"] is None
        assert back["promotedTask"] is not None
        assert back["promotedTask"]["id"] == queued["id"]
        assert back["promotedTask"]["status"] == "PENDING"
        assert back["sender"] == {"role": "reviewer", "status": "WAITING"}
        assert ids(await api.pending(rid, "builder")) == [queued["id"]]
        assert await api.pending(rid, "reviewer") == []

        counts = await api.counts(rid)
        assert counts == {
            "pending": 1,
            "inProgress": 0,
            "queued": 0,
            "backlog": 0,
            "completed": 2,
            "cancelled": 0,
        }

    rows = await db_tasks(module_db.url, rid)
    assert sorted(r["status"] for r in rows) == ["completed", "completed", "pending"]
    assert await db_statuses(module_db.url, rid) == {
        "builder": "waiting",
        "reviewer": "waiting",
    }


async def test_squad_new_feature_goes_through_review(live_server: LiveServer) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        room = await api.create_room(teamId="squad", name="squad")
        rid = room["id"]
        assert room["entryPoint"] == "manager"
        await api.request_and_claim(rid, "Build a dashboard", role="manager")
        await api.classify(rid, "manager", "NEW_FEATURE")

        code, message = await expect_error(api.handoff(rid, "manager", "user", "done?"))
        assert code == "HANDOFF_NOT_ALLOWED"
        assert "reviewer" in message

        t = (await api.handoff(rid, "manager", "builder", "build it"))["newTask"]
        assert (await api.claim(rid, t["id"], "builder"))["success"]
        # Not the reviewer, still unreviewed: the builder may not return it either.
        code, _ = await expect_error(api.handoff(rid, "builder", "user", "done"))
        assert code == "HANDOFF_NOT_ALLOWED"
        t = (await api.handoff(rid, "builder", "reviewer", "review it"))["newTask"]
        assert (await api.claim(rid, t["id"], "reviewer"))["success"]
        t = (await api.handoff(rid, "reviewer", "manager", "looks right"))["newTask"]
        assert t["assignedTo"] == "manager"
        assert (await api.claim(rid, t["id"], "manager"))["success"]
        done = await api.handoff(rid, "manager", "user", "Dashboard shipped")
        assert done["newTask"] is None
        assert done["message"]["targetRole"] == "user"
        assert [x["status"] for x in done["completedTasks"]] == ["COMPLETED"]
        counts = await api.counts(rid)
        assert counts["completed"] == 4
        assert counts["pending"] == counts["inProgress"] == 0


async def _finish_chain_via_review(api: Api, rid: str) -> None:
    """builder (holding) -> reviewer -> user."""
    t = (await api.handoff(rid, "builder", "reviewer", "please review"))["newTask"]
    assert (await api.claim(rid, t["id"], "reviewer"))["success"]
    await api.handoff(rid, "reviewer", "user", "approved")


async def test_follow_up_inherits_the_chain_rule(live_server: LiveServer) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="follow ups"))["id"]

        # Chain 1: a new feature, reviewed.
        first, _ = await api.request_and_claim(rid, "Add search")
        await api.classify(rid, "builder", "NEW_FEATURE")
        await _finish_chain_via_review(api, rid)

        # Chain 2: a follow-up of it: restricted too (chain 1's review does not count).
        await api.request_and_claim(rid, "Make search case-insensitive")
        fu = await api.classify(rid, "builder", "FOLLOW_UP")
        assert fu["classification"] == "FOLLOW_UP"
        assert fu["effectiveClassification"] == "NEW_FEATURE"
        assert fu["follows"]["id"] == first["message"]["id"]
        code, _ = await expect_error(api.handoff(rid, "builder", "user", "done"))
        assert code == "HANDOFF_NOT_ALLOWED"
        t = (await api.handoff(rid, "builder", "reviewer", "please review"))["newTask"]
        assert (await api.claim(rid, t["id"], "reviewer"))["success"]
        # A handoff task is not a user request: its chain is already classified.
        code, _ = await expect_error(api.classify(rid, "reviewer", "QUESTION"))
        assert code == "BAD_USER_INPUT"
        await api.handoff(rid, "reviewer", "user", "approved")

        # Chain 3: a question goes straight back.
        question, _ = await api.request_and_claim(rid, "What does search index?")
        await api.classify(rid, "builder", "QUESTION")
        assert (await api.handoff(rid, "builder", "user", "titles only"))["newTask"] is None

        # Chain 4: a follow-up of the question is not restricted.
        await api.request_and_claim(rid, "And bodies?")
        fu = await api.classify(rid, "builder", "FOLLOW_UP")
        assert fu["effectiveClassification"] == "QUESTION"
        assert fu["follows"]["id"] == question["message"]["id"]
        assert (await api.handoff(rid, "builder", "user", "no"))["message"]["type"] == "HANDOFF"

        # Classification is set once per chain.
        await api.request_and_claim(rid, "Add filters")
        await api.classify(rid, "builder", "NEW_FEATURE")
        assert (await api.classify(rid, "builder", "NEW_FEATURE"))["classification"] == (
            "NEW_FEATURE"
        )
        code, _ = await expect_error(api.classify(rid, "builder", "QUESTION"))
        assert code == "CONFLICT"


async def test_follow_up_without_an_earlier_chain_is_bad_input(
    live_server: LiveServer, module_db: PgDatabase
) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="no earlier chain"))["id"]
        sent, _ = await api.request_and_claim(rid, "Continue what we did")
        before = await db_room_state(module_db.url, rid)
        code, message = await expect_error(api.classify(rid, "builder", "FOLLOW_UP"))
        assert code == "BAD_USER_INPUT"
        assert "question" in message and "new_feature" in message
        assert await db_room_state(module_db.url, rid) == before
        msgs = await api.all_messages(rid)
        assert msgs[0]["classification"] is None
        # Nothing was half-set: it can still be classified properly.
        assert (await api.classify(rid, "builder", "QUESTION"))["classification"] == "QUESTION"
        # The reviewer holds nothing to classify.
        code, _ = await expect_error(api.classify(rid, "reviewer", "QUESTION"))
        assert code == "NOT_TASK_HOLDER"
        assert sent["message"]["id"] == msgs[0]["id"]


async def test_backlog_operations(live_server: LiveServer, module_db: PgDatabase) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="backlog"))["id"]

        async def backlog(content: str) -> dict[str, Any]:
            return (await api.execute(ADD_BACKLOG, input={"chatroomId": rid, "content": content}))[
                "addBacklogTask"
            ]

        async def move(tid: str) -> dict[str, Any]:
            return (await api.execute(MOVE, input={"chatroomId": rid, "taskId": tid}))[
                "moveTaskToQueue"
            ]

        async def cancel(tid: str) -> dict[str, Any]:
            return (await api.execute(CANCEL, input={"chatroomId": rid, "taskId": tid}))[
                "cancelTask"
            ]

        async def complete(tid: str, force: bool = False) -> dict[str, Any]:
            data = await api.execute(
                COMPLETE, input={"chatroomId": rid, "taskId": tid, "force": force}
            )
            return data["completeTask"]

        async def update(tid: str, content: str) -> dict[str, Any]:
            data = await api.execute(
                UPDATE, input={"chatroomId": rid, "taskId": tid, "content": content}
            )
            return data["updateTask"]

        a = await backlog("task A")
        assert (a["status"], a["createdBy"], a["queuePosition"]) == ("BACKLOG", "user", None)
        # Backlog work is never picked up automatically.
        assert await api.pending(rid, "builder") == []
        assert (await update(a["id"], "task A, edited"))["content"] == "task A, edited"

        # Idle room: backlog -> PENDING.
        moved = await move(a["id"])
        assert moved["status"] == "PENDING"
        assert ids(await api.pending(rid, "builder")) == [a["id"]]
        code, _ = await expect_error(update(a["id"], "too late"))
        assert code == "CONFLICT"
        code, _ = await expect_error(move(a["id"]))
        assert code == "CONFLICT"

        # Busy room: the end of the queue, in arrival order with user messages.
        b = await backlog("task B")
        mb = await move(b["id"])
        c = (await api.send(rid, "request C"))["task"]
        d = await backlog("task D")
        md = await move(d["id"])
        assert (mb["status"], c["status"], md["status"]) == ("QUEUED", "QUEUED", "QUEUED")
        assert mb["queuePosition"] < c["queuePosition"] < md["queuePosition"]
        assert ids(await api.tasks(rid, ["QUEUED"])) == [b["id"], c["id"], d["id"]]
        assert (await update(c["id"], "request C, edited"))["status"] == "QUEUED"

        # Cancel a queued task.
        cancelled = await cancel(d["id"])
        assert cancelled["status"] == "CANCELLED" and cancelled["completedAt"] is not None
        assert ids(await api.tasks(rid, ["QUEUED"])) == [b["id"], c["id"]]

        # The active task needs force; forcing it frees the baton for the next queued one.
        assert (await api.claim(rid, a["id"], "builder"))["success"]
        code, message = await expect_error(complete(a["id"]))
        assert code == "BAD_USER_INPUT" and "force" in message
        assert (await api.tasks(rid, ["IN_PROGRESS"]))[0]["id"] == a["id"]
        assert (await complete(a["id"], force=True))["status"] == "COMPLETED"
        assert ids(await api.pending(rid, "builder")) == [b["id"]]
        assert ids(await api.tasks(rid, ["QUEUED"])) == [c["id"]]
        assert (await db_statuses(module_db.url, rid))["builder"] == "idle"

        # Completing queued work needs no force and does not touch the baton.
        assert (await complete(c["id"]))["status"] == "COMPLETED"
        assert ids(await api.pending(rid, "builder")) == [b["id"]]

        # Cancelling the active task frees the baton; nothing is queued, and backlog work is
        # never picked up automatically: the room is idle.
        e = await backlog("task E")
        assert (await cancel(b["id"]))["status"] == "CANCELLED"
        assert await api.pending(rid, "builder") == []
        assert ids(await api.tasks(rid, ["BACKLOG"])) == [e["id"]]
        assert await api.tasks(rid, ["PENDING", "IN_PROGRESS"]) == []
        assert (await cancel(e["id"]))["status"] == "CANCELLED"
        code, _ = await expect_error(cancel(e["id"]))
        assert code == "CONFLICT"
        code, _ = await expect_error(complete(a["id"], force=True))
        assert code == "CONFLICT"
        f = await backlog("task F")

        assert await api.counts(rid) == {
            "pending": 0,
            "inProgress": 0,
            "queued": 0,
            "backlog": 1,
            "completed": 2,
            "cancelled": 3,
        }
        # The idle room takes the next moved task straight away.
        assert (await move(f["id"]))["status"] == "PENDING"

    statuses = sorted(r["status"] for r in await db_tasks(module_db.url, rid))
    assert statuses == ["cancelled"] * 3 + ["completed"] * 2 + ["pending"]


async def test_interrupt_returns_the_task_and_idles_everyone(
    live_server: LiveServer, module_db: PgDatabase
) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="interrupt"))["id"]
        sent, _ = await api.request_and_claim(rid, "Long job")
        queued = (await api.send(rid, "next job"))["task"]
        await api.execute(
            'mutation($c: ID!) { joinChatroom(chatroomId: $c, role: "reviewer") { status } }',
            c=rid,
        )
        assert (await db_statuses(module_db.url, rid)) == {
            "builder": "active",
            "reviewer": "waiting",
        }

        room = await api.interrupt(rid)
        assert {p["status"] for p in room["participants"]} == {"IDLE"}
        active = await api.tasks(rid, ["PENDING", "IN_PROGRESS"])
        assert [(t["id"], t["status"], t["assignedTo"]) for t in active] == [
            (sent["task"]["id"], "PENDING", "builder")
        ]
        assert ids(await api.tasks(rid, ["QUEUED"])) == [queued["id"]]
        last = (await api.messages(rid, last=1))["edges"][0]["node"]
        assert (last["type"], last["senderRole"]) == ("INTERRUPT", "user")
        assert await db_statuses(module_db.url, rid) == {"builder": "idle", "reviewer": "idle"}

        # The interrupted holder no longer holds it: a stale handoff is refused.
        code, message = await expect_error(api.handoff(rid, "builder", "reviewer", "done"))
        assert code == "NOT_TASK_HOLDER"
        assert "laim it again" in message

        # The work resumes: the same role claims it again (a second attempt).
        again = await api.claim(rid, sent["task"]["id"], "builder")
        assert again["success"] is True
        assert again["task"]["attempt"] == 2
        back = await api.handoff(rid, "builder", "user", "done")
        assert back["promotedTask"]["id"] == queued["id"]


async def test_completed_room_takes_no_new_work(live_server: LiveServer) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="to complete"))["id"]
        pending = (await api.send(rid, "one"))["task"]
        queued = (await api.send(rid, "two"))["task"]
        room = (await api.execute(COMPLETE_ROOM, c=rid))["completeChatroom"]
        assert room["status"] == "COMPLETED"
        by_id = {t["id"]: t["status"] for t in await api.tasks(rid)}
        assert by_id == {pending["id"]: "CANCELLED", queued["id"]: "CANCELLED"}

        before = await api_state(api, rid)
        code, message = await expect_error(api.send(rid, "three"))
        assert code == "CONFLICT"
        assert "completed" in message
        code, _ = await expect_error(
            api.execute(ADD_BACKLOG, input={"chatroomId": rid, "content": "later"})
        )
        assert code == "CONFLICT"
        assert await api_state(api, rid) == before
        # Completing again is harmless.
        assert (await api.execute(COMPLETE_ROOM, c=rid))["completeChatroom"]["status"] == (
            "COMPLETED"
        )


async def test_messages_connection_pages_both_ways(live_server: LiveServer) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="paging"))["id"]
        for n in range(1, 31):
            await api.send(rid, f"message {n}")

        # Forward: first/after.
        seen: list[int] = []
        after = None
        pages = 0
        while True:
            page = await api.messages(rid, first=7, after=after)
            pages += 1
            seqs = [e["node"]["seq"] for e in page["edges"]]
            assert [n["seq"] for n in page["nodes"]] == seqs
            assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
            assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
            for e in page["edges"]:
                assert e["node"]["content"] == f"message {e['node']['seq']}"
            seen += seqs
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == list(range(1, 31))
        assert pages == 5  # 7+7+7+7+2

        # Backward: last/before, from the newest.
        back: list[int] = []
        before = None
        while True:
            page = await api.messages(rid, last=8, before=before)
            seqs = [e["node"]["seq"] for e in page["edges"]]
            assert seqs == sorted(seqs)  # each page is still oldest first
            assert page["pageInfo"]["hasNextPage"] is (before is not None)
            back = seqs + back
            if not page["pageInfo"]["hasPreviousPage"]:
                break
            before = page["pageInfo"]["startCursor"]
        assert back == list(range(1, 31))

        # Paging exactly to the end, and a cursor in the middle.
        page = await api.messages(rid, first=30)
        assert page["pageInfo"]["hasNextPage"] is False
        assert len(page["edges"]) == 30
        mid = page["edges"][9]["cursor"]  # seq 10
        assert [
            e["node"]["seq"] for e in (await api.messages(rid, first=3, after=mid))["edges"]
        ] == [
            11,
            12,
            13,
        ]
        assert [
            e["node"]["seq"] for e in (await api.messages(rid, last=3, before=mid))["edges"]
        ] == [7, 8, 9]
        default = await api.messages(rid)
        assert [e["node"]["seq"] for e in default["edges"]] == list(range(1, 31))

        code, _ = await expect_error(api.messages(rid, first=5, after="not-a-cursor"))
        assert code == "BAD_USER_INPUT"


async def test_context_window_is_the_current_chain(live_server: LiveServer) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="context"))["id"]
        empty = (await api.execute(CONTEXT, c=rid, r="builder"))["contextWindow"]
        assert empty == {
            "originMessage": None,
            "messages": [],
            "task": None,
            "classification": None,
            "truncated": False,
        }

        await api.request_and_claim(rid, "What is the port?")
        await api.classify(rid, "builder", "QUESTION")
        await api.handoff(rid, "builder", "user", "8000")

        sent, _ = await api.request_and_claim(rid, "Add TLS")
        origin = sent["message"]
        await api.classify(rid, "builder", "NEW_FEATURE")
        note = (await api.send(rid, "Working on certs", senderRole="builder"))["message"]
        assert note["type"] == "MESSAGE"
        h = await api.handoff(rid, "builder", "reviewer", "TLS done, please review")

        window = (await api.execute(CONTEXT, c=rid, r="reviewer"))["contextWindow"]
        assert window["originMessage"]["id"] == origin["id"]
        assert [m["id"] for m in window["messages"]] == [
            origin["id"],
            note["id"],
            h["message"]["id"],
        ]
        assert window["task"]["id"] == h["newTask"]["id"]
        assert window["task"]["assignedTo"] == "reviewer"
        assert window["classification"] == "NEW_FEATURE"
        assert window["truncated"] is False
        assert all(m["content"] != "What is the port?" for m in window["messages"])

        # The builder holds nothing now: it sees the room's current chain, without a task.
        window = (await api.execute(CONTEXT, c=rid, r="builder"))["contextWindow"]
        assert window["originMessage"]["id"] == origin["id"]
        assert window["task"] is None

        # A long chain: the newest messages are kept, the origin always leads.
        for n in range(CONTEXT_LIMIT + 1):
            await api.send(rid, f"note {n}", senderRole="reviewer")
        window = (await api.execute(CONTEXT, c=rid, r="reviewer"))["contextWindow"]
        assert window["truncated"] is True
        assert window["messages"][0]["id"] == origin["id"]
        assert len(window["messages"]) == CONTEXT_LIMIT + 1
        assert window["messages"][-1]["content"] == f"note {CONTEXT_LIMIT}"
        seqs = [m["seq"] for m in window["messages"][1:]]
        assert seqs == list(range(seqs[0], seqs[0] + CONTEXT_LIMIT))

        code, _ = await expect_error(api.execute(CONTEXT, c=rid, r="stranger"))
        assert code == "BAD_USER_INPUT"


async def test_role_prompt_names_the_allowed_targets(live_server: LiveServer) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        pair = (await api.create_room(name="prompts"))["id"]
        builder = (await api.execute(PROMPT, chatroomId=pair, role="builder"))["rolePrompt"]
        assert builder["role"] == "builder"
        assert builder["allowedTargets"] == ["reviewer", "user"]
        assert builder["defaultTarget"] == "user"
        assert "You may hand off to: reviewer, user." in builder["prompt"]
        assert "wait-for-message" in builder["prompt"]
        assert pair in builder["prompt"]
        assert "new_feature" in builder["prompt"]  # the entry point classifies

        reviewer = (await api.execute(PROMPT, chatroomId=pair, role="Reviewer"))["rolePrompt"]
        assert reviewer["role"] == "reviewer"
        assert reviewer["allowedTargets"] == ["builder", "user"]
        assert reviewer["defaultTarget"] == "builder"
        assert "You may hand off to: builder, user." in reviewer["prompt"]

        squad = (await api.create_room(teamId="squad", name="squad prompts"))["id"]
        manager = (await api.execute(PROMPT, chatroomId=squad, role="manager"))["rolePrompt"]
        assert manager["allowedTargets"] == [
            "architect",
            "builder",
            "frontend-designer",
            "reviewer",
            "tester",
            "user",
        ]
        for target in manager["allowedTargets"]:
            assert target in manager["prompt"]

        code, _ = await expect_error(api.execute(PROMPT, chatroomId=pair, role="manager"))
        assert code == "BAD_USER_INPUT"

        # In the duo only the planner reports to the user; the builder answers the planner.
        duo = (await api.create_room(teamId="duo", name="duo prompts"))["id"]
        planner = (await api.execute(PROMPT, chatroomId=duo, role="planner"))["rolePrompt"]
        assert planner["allowedTargets"] == ["builder", "user"]
        assert planner["defaultTarget"] == "user"
        duo_builder = (await api.execute(PROMPT, chatroomId=duo, role="builder"))["rolePrompt"]
        assert duo_builder["allowedTargets"] == ["planner"]
        assert duo_builder["defaultTarget"] == "planner"
        assert 'Only "planner" reports to "user".' in duo_builder["prompt"]
        solo = (await api.create_room(teamId="solo", name="solo prompts"))["id"]
        alone = (await api.execute(PROMPT, chatroomId=solo, role="solo"))["rolePrompt"]
        assert alone["allowedTargets"] == ["user"]
        assert "You may hand off to: user." in alone["prompt"]
        for text in (builder["prompt"], reviewer["prompt"], planner["prompt"], alone["prompt"]):
            # Each rule once: the chain defined in one sentence, the endless loop, one waiter.
            assert text.count("A chain is ") == 1
            assert text.count("The loop never ends on its own") == 1
            assert text.count("One waiter per role: a second wait-for-message") == 1
            assert text.count("Only the message body") == 1


TEAMS = "{ teams { id name roles entryPoint } }"


async def test_teams_lists_the_built_in_templates(live_server: LiveServer) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        teams = {t["id"]: t for t in (await api.execute(TEAMS))["teams"]}
    assert list(teams) == ["pair", "squad", "duo", "solo"]
    assert teams["duo"]["roles"] == ["planner", "builder"]
    assert teams["duo"]["entryPoint"] == "planner"
    assert teams["solo"]["roles"] == ["solo"] and teams["solo"]["entryPoint"] == "solo"


REVIEWED = "query($c: ID!, $r: String!) { contextWindow(chatroomId: $c, role: $r) { reviewed } }"


async def test_context_window_says_whether_the_chain_was_reviewed(
    live_server: LiveServer,
) -> None:
    """ContextWindow.reviewed is the server's own rule for a new_feature going to the user."""
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="reviewed"))["id"]

        async def reviewed(role: str) -> bool:
            return bool((await api.execute(REVIEWED, c=rid, r=role))["contextWindow"]["reviewed"])

        async def claim(role: str) -> None:
            task = (await api.pending(rid, role))[0]
            assert (await api.claim(rid, task["id"], role))["success"] is True

        await api.request_and_claim(rid, "first")
        assert not await reviewed("builder")
        await api.handoff(rid, "builder", "reviewer", "check it")
        await claim("reviewer")
        assert not await reviewed("reviewer")  # a review in progress is not completed
        await api.handoff(rid, "reviewer", "builder", "fix x")
        await claim("builder")
        assert await reviewed("builder")
        await api.handoff(rid, "builder", "user", "done")
        await api.request_and_claim(rid, "second")  # a new chain: nothing reviewed in it yet
        assert not await reviewed("builder")


async def test_task_counts_follow_every_status(live_server: LiveServer) -> None:
    token = await new_token(live_server)
    async with connect(live_server, token) as api:
        rid = (await api.create_room(name="counts"))["id"]
        zero = {
            "pending": 0,
            "inProgress": 0,
            "queued": 0,
            "backlog": 0,
            "completed": 0,
            "cancelled": 0,
        }
        assert await api.counts(rid) == zero
        await api.request_and_claim(rid, "first")
        await api.send(rid, "second")
        await api.send(rid, "third")
        await api.execute(ADD_BACKLOG, input={"chatroomId": rid, "content": "someday"})
        assert await api.counts(rid) == {**zero, "inProgress": 1, "queued": 2, "backlog": 1}
        await api.handoff(rid, "builder", "reviewer", "review")
        assert await api.counts(rid) == {
            **zero,
            "pending": 1,
            "queued": 2,
            "backlog": 1,
            "completed": 1,
        }
        listed = await api.tasks(rid)
        # Active first, then the queue in order, the backlog, the finished.
        assert [t["status"] for t in listed] == [
            "PENDING",
            "QUEUED",
            "QUEUED",
            "BACKLOG",
            "COMPLETED",
        ]
        assert [t["content"] for t in listed[1:3]] == ["second", "third"]
