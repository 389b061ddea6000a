"""When a slot's token stops working: its machine's owner losing the right to steer the room
(removed, or made a viewer) stops the slot at once, in the same transaction; a state report is
about one claim (its generation), so a late one cannot revoke the next claim's token."""

from __future__ import annotations

from typing import Any

from tests.accounts.test_members import SET_ROLE
from tests.agents.common import (
    CLAIM_SLOT,
    REPORT,
    RESTART,
    ROOM_AGENTS,
    agent_events,
    claim,
    join,
    last_seq,
    new_daemon,
    register,
    remove,
    shared_room,
    start,
)
from tests.security.common import TASK_AVAILABLE, TASKS, call, new_room, new_user, ok
from tests.support.api import subscription
from tests.support.server import LiveServer


async def _slots(server: LiveServer, token: str, room: str) -> dict[str, Any]:
    """The room's slots by role, as the room's owner reads them, and the room's event head."""
    agents = (await ok(server, token, ROOM_AGENTS, id=room))["agents"]
    return {"slots": {a["role"]: a for a in agents}, "seq": await last_seq(server, token, room)}


async def _lose_access(server: LiveServer, how: str) -> None:
    shared = await shared_room(server)
    owner, member, member_id, room = shared.owner, shared.member, shared.member_id, shared.room
    slot, daemon = shared.slot, shared.daemon
    claimed, owners = shared.claimed, shared.owners
    token = claimed["token"]
    head = await last_seq(server, owner, room)

    async with subscription(
        server, token, "graphql-transport-ws", TASK_AVAILABLE, c=room, r="builder"
    ) as waiting:
        if how == "removed":
            await remove(server, owner, room, member_id)
        else:
            await ok(server, owner, SET_ROLE, r=room, u=member_id, role="VIEWER")
        # The harness's open subscription ends (its token revoked, or its user's access gone:
        # whichever the server learns first).
        assert (await waiting.expect_error())[0] in ("UNAUTHENTICATED", "NOT_FOUND", "FORBIDDEN")
    # Revoked at once, not merely out of the room: the next request is UNAUTHENTICATED.
    assert (await call(server, token, TASKS, c=room)).code == "UNAUTHENTICATED"
    (event,) = await agent_events(server, owner, room, head)
    assert (event["role"], event["state"], event["desiredState"]) == (
        "builder",
        "STOPPED",
        "STOPPED",
    )
    assert event["daemonId"] is None and event["generation"] == slot["generation"]
    after = await _slots(server, owner, room)
    assert after["slots"]["builder"] == event
    # The owner's own slot is untouched.
    assert await ok(server, owners["token"], TASKS, c=room) == []
    assert after["slots"]["reviewer"] == owners["slot"]

    # The daemon's STOPPED report (it learns late) changes nothing: it serves no claim now.
    late = await call(
        server,
        member,
        REPORT,
        input={
            "slotId": slot["id"],
            "daemonId": daemon,
            "generation": slot["generation"],
            "state": "STOPPED",
        },
    )
    assert late.code == "CONFLICT"
    assert await _slots(server, owner, room) == after

    # A member again: the old token stays dead and the slot stays stopped until a person
    # starts it; the daemon cannot claim it meanwhile.
    if how == "removed":
        await join(server, owner, room, member, "MEMBER")
    else:
        await ok(server, owner, SET_ROLE, r=room, u=member_id, role="MEMBER")
    assert (await call(server, token, TASKS, c=room)).code == "UNAUTHENTICATED"
    again = (await _slots(server, owner, room))["slots"]["builder"]
    assert (again["desiredState"], again["state"], again["daemonId"]) == (
        "STOPPED",
        "STOPPED",
        None,
    )
    refused = await call(
        server,
        member,
        CLAIM_SLOT,
        input={"slotId": slot["id"], "daemonId": daemon, "generation": slot["generation"]},
    )
    assert refused.code == "CONFLICT"


async def test_a_removed_members_slot_is_stopped_and_its_token_revoked(
    live_server: LiveServer,
) -> None:
    await _lose_access(live_server, "removed")


async def test_a_member_made_viewer_loses_its_slots_token(live_server: LiveServer) -> None:
    await _lose_access(live_server, "viewer")


async def test_a_report_about_an_earlier_claim_is_a_conflict(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    machine = await register(live_server, owner)
    (slot,) = await start(live_server, owner, room, machine["id"], roles=["builder"])
    daemon = new_daemon()
    await claim(live_server, owner, slot, daemon)
    (restarted,) = await ok(
        live_server, owner, RESTART, input={"chatroomId": room, "roles": ["builder"]}
    )
    second = await claim(live_server, owner, restarted, daemon)  # the same daemon, again
    before = await _slots(live_server, owner, room)

    late = await call(
        live_server,
        owner,
        REPORT,
        input={
            "slotId": slot["id"],
            "daemonId": daemon,
            "generation": slot["generation"],
            "state": "STOPPED",
        },
    )
    assert late.code == "CONFLICT" and "restarted or changed" in late.message
    assert "machineAgents" in late.message
    assert await _slots(live_server, owner, room) == before
    assert await ok(live_server, second["token"], TASKS, c=room) == []
    # The report about the claim held is taken.
    current = await ok(
        live_server,
        owner,
        REPORT,
        input={
            "slotId": slot["id"],
            "daemonId": daemon,
            "generation": restarted["generation"],
            "state": "WAITING",
        },
    )
    assert current["state"] == "WAITING"
