"""Who may do what with agent slots (SPEC §10, §12), and bad input: every refusal is coded,
says what to do, and changes nothing."""

from __future__ import annotations

from typing import Any

from tests.agents.common import (
    CLAIM_SLOT,
    REPORT,
    RESTART,
    START,
    STOP,
    WORKDIR,
    claim,
    db_room,
    join,
    new_daemon,
    register,
    remove,
    shared_room,
    start,
)
from tests.security.common import TASKS, agent_token, call, new_room, new_user, ok
from tests.support.server import LiveServer


def start_input(room: str, machine: str, **fields: Any) -> dict[str, Any]:
    return {"chatroomId": room, "machineId": machine, "harness": "claude", "workdir": WORKDIR} | (
        fields
    )


async def test_viewers_strangers_and_agent_tokens(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    viewer, _ = await new_user(live_server, "viewer")
    stranger, _ = await new_user(live_server, "stranger")
    room = (await new_room(live_server, owner))["id"]
    await join(live_server, owner, room, viewer, "VIEWER")
    owners_box = await register(live_server, owner, "owner box")
    viewers_box = await register(live_server, viewer, "viewer box")
    (slot,) = await start(live_server, owner, room, owners_box["id"], roles=["builder"])
    before = await db_room(live_server.db_url, room)

    # A viewer reads the room's agents but cannot start any, even on their own machine.
    seen = await ok(
        live_server, viewer, "query($id: ID!) { chatroom(id: $id) { agents { role } } }", id=room
    )
    assert seen["agents"] == [{"role": "builder"}]
    refused = await call(live_server, viewer, START, input=start_input(room, viewers_box["id"]))
    assert refused.code == "FORBIDDEN" and "viewer" in refused.message
    # ... nor stop or restart what runs on someone else's machine.
    for doc in (STOP, RESTART):
        out = await call(live_server, viewer, doc, input={"chatroomId": room})
        assert out.code in ("FORBIDDEN",), (doc, out)
    # Someone else's machine is not yours to use: it answers like a missing one.
    taken = await call(
        live_server,
        viewer,
        CLAIM_SLOT,
        input={"slotId": slot["id"], "daemonId": new_daemon(), "generation": 1},
    )
    assert taken.code == "NOT_FOUND"
    stranger_room = (await new_room(live_server, stranger))["id"]
    used = await call(
        live_server, stranger, START, input=start_input(stranger_room, owners_box["id"])
    )
    assert used.code == "NOT_FOUND" and "machine" in used.message
    # A stranger sees neither the room nor its slots.
    for doc in (STOP, RESTART):
        assert (await call(live_server, stranger, doc, input={"chatroomId": room})).code == (
            "NOT_FOUND"
        )
    assert (
        await call(live_server, stranger, START, input=start_input(room, owners_box["id"]))
    ).code == "NOT_FOUND"

    # An agent token, even the owner's for this room, runs no agents.
    agent, _ = await agent_token(live_server, owner, room, "builder")
    for doc, fields in (
        (START, start_input(room, owners_box["id"])),
        (STOP, {"chatroomId": room}),
        (RESTART, {"chatroomId": room}),
        (CLAIM_SLOT, {"slotId": slot["id"], "daemonId": new_daemon(), "generation": 1}),
        (
            REPORT,
            {"slotId": slot["id"], "daemonId": new_daemon(), "generation": 1, "state": "WAITING"},
        ),
    ):
        out = await call(live_server, agent, doc, input=fields)
        assert out.code == "FORBIDDEN", (doc, out)
    assert await db_room(live_server.db_url, room) == before


async def test_members_run_agents_on_their_own_machines(live_server: LiveServer) -> None:
    shared = await shared_room(live_server)
    owner, member, member_id, room = shared.owner, shared.member, shared.member_id, shared.room
    owners_box, members_box = shared.owners_box, shared.members_box
    slot, daemon = shared.slot, shared.daemon
    claimed, owners = shared.claimed, shared.owners

    # The member may stop and restart their own machine's agent, not the owner's.
    out = await call(live_server, member, STOP, input={"chatroomId": room, "roles": ["reviewer"]})
    assert out.code == "FORBIDDEN" and "reviewer" in out.message
    # ...nor take it over by starting it on their own machine (named, or with the whole team).
    before = await db_room(live_server.db_url, room)
    for roles in (["reviewer"], None, ["builder", "reviewer"]):
        fields = start_input(room, members_box["id"], workdir="/srv/mine", roles=roles)
        taken = await call(live_server, member, START, input=fields)
        assert taken.code == "FORBIDDEN", (roles, taken)
        assert "reviewer runs on someone else's machine" in taken.message
        assert "room's owner or the owner of that machine" in taken.message
    assert await db_room(live_server.db_url, room) == before
    assert await ok(live_server, owners["token"], TASKS, c=room) == []
    mine = await ok(live_server, member, RESTART, input={"chatroomId": room})
    assert [(s["role"], s["generation"]) for s in mine] == [("builder", 2)]
    # The room's owner may stop any slot of the room.
    both = await ok(live_server, owner, STOP, input={"chatroomId": room})
    assert sorted(s["role"] for s in both) == ["builder", "reviewer"]
    await ok(live_server, member, RESTART, input={"chatroomId": room, "roles": ["builder"]})
    claimed = await claim(live_server, member, {**slot, "generation": 3}, daemon)

    # Removed from the room: the member's daemon can no longer claim or report.
    await remove(live_server, owner, room, member_id)
    before = await db_room(live_server.db_url, room)
    again = await call(
        live_server,
        member,
        CLAIM_SLOT,
        input={"slotId": slot["id"], "daemonId": daemon, "generation": slot["generation"]},
    )
    assert again.code == "FORBIDDEN" and "stop" in again.message
    report = await call(
        live_server,
        member,
        REPORT,
        input={
            "slotId": slot["id"],
            "daemonId": daemon,
            "generation": slot["generation"],
            "state": "WAITING",
        },
    )
    assert report.code == "FORBIDDEN"
    assert await db_room(live_server.db_url, room) == before
    # The room's owner may move a member's agent to their own machine.
    (moved,) = await start(live_server, owner, room, owners_box["id"], roles=["builder"])
    assert (moved["machineId"], moved["desiredState"]) == (owners_box["id"], "RUNNING")
    assert (await call(live_server, claimed["token"], TASKS, c=room)).code == "UNAUTHENTICATED"


async def test_bad_input_is_coded_and_changes_nothing(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    box = await register(live_server, owner)
    await start(live_server, owner, room, box["id"], roles=["reviewer"])
    before = await db_room(live_server.db_url, room)

    for fields, says in (
        ({"harness": "gemini"}, "claude, codex, opencode, command"),
        ({"harness": "command"}, "{prompt_file}"),
        ({"harness": "claude", "command": "x {prompt_file}"}, "only for harness command"),
        ({"workdir": "project"}, "absolute path"),
        ({"workdir": ""}, "absolute path"),
        ({"roles": ["builder", "architect"]}, "architect"),
        ({"roles": ["Not A Role"]}, "valid role"),
        ({"taskTimeoutSeconds": 0}, "taskTimeoutSeconds"),
        ({"workdir": "/srv/\u0000"}, "NUL"),
    ):
        out = await call(live_server, owner, START, input=start_input(room, box["id"], **fields))
        assert out.code == "BAD_USER_INPUT", (fields, out)
        assert says in out.message, (fields, out.message)
    missing = await call(live_server, owner, STOP, input={"chatroomId": room, "roles": ["builder"]})
    assert missing.code == "BAD_USER_INPUT"
    assert f"chatroom agents start {room} --role builder" in missing.message
    unknown_state = await call(
        live_server,
        owner,
        REPORT,
        input={
            "slotId": before["slots"][0]["id"].hex,
            "daemonId": "nope",
            "generation": 1,
            "state": "WAITING",
        },
    )
    assert unknown_state.code == "BAD_USER_INPUT" and "daemonId" in unknown_state.message
    assert await db_room(live_server.db_url, room) == before

    # The command the message names works: start the missing role as it says.
    await start(
        live_server,
        owner,
        room,
        box["id"],
        roles=["builder"],
        harness="command",
        command="my-agent {prompt_file}",
    )
    stopped = await ok(live_server, owner, STOP, input={"chatroomId": room, "roles": ["builder"]})
    assert stopped[0]["command"] == "my-agent {prompt_file}"
