"""Agent slots over the real server: startAgents upserts one slot per role (generation bumped
only when the daemon must start afresh), stop and restart, the AGENT_UPDATED events in the
room's log, Chatroom.agents, and a completed room stopping its slots."""

from __future__ import annotations

from typing import Any

from tests.agents.common import (
    AGENT_EVENTS,
    MACHINES,
    RESTART,
    ROOM_AGENTS,
    STOP,
    WORKDIR,
    claim,
    db_slots,
    last_seq,
    new_daemon,
    register,
    start,
    token_revoked,
)
from tests.security.common import new_room, new_user, ok
from tests.support.api import subscription
from tests.support.documents import COMPLETE_ROOM
from tests.support.server import LiveServer


def by_role(slots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["role"]: s for s in slots}


async def test_start_upserts_and_bumps_the_generation_only_when_needed(
    live_server: LiveServer,
) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    machine = await register(live_server, owner, "box")

    slots = await start(live_server, owner, room, machine["id"])
    assert [s["role"] for s in slots] == ["builder", "reviewer"]  # default: the whole team
    for slot in slots:
        assert slot["generation"] == 1 and slot["desiredState"] == "RUNNING"
        assert slot["state"] == "STOPPED" and slot["daemonId"] is None
        assert slot["machineId"] == machine["id"] and slot["machineName"] == "box"
        assert slot["harness"] == "claude" and slot["workdir"] == WORKDIR
    head = await last_seq(live_server, owner, room)

    # The same again changes nothing: no event, same generation.
    again = await start(live_server, owner, room, machine["id"])
    assert [s["generation"] for s in again] == [1, 1]
    assert await last_seq(live_server, owner, room) == head

    # A new config for one role: that slot starts afresh, the other is untouched.
    changed = await start(
        live_server,
        owner,
        room,
        machine["id"],
        roles=["Reviewer"],
        workdir="/srv/other",
        model="opus",
        taskTimeoutSeconds=600,
        freshSession=True,
    )
    assert [(s["role"], s["generation"], s["workdir"]) for s in changed] == [
        ("reviewer", 2, "/srv/other")
    ]
    assert changed[0]["model"] == "opus" and changed[0]["taskTimeoutSeconds"] == 600
    assert changed[0]["freshSession"] is True
    assert await last_seq(live_server, owner, room) == head + 1

    stopped = await ok(live_server, owner, STOP, input={"chatroomId": room, "roles": ["builder"]})
    assert [(s["role"], s["desiredState"], s["generation"]) for s in stopped] == [
        ("builder", "STOPPED", 1)
    ]
    # Starting a stopped slot with the same config starts it afresh.
    restarted = await start(live_server, owner, room, machine["id"], roles=["builder"])
    assert [(s["desiredState"], s["generation"]) for s in restarted] == [("RUNNING", 2)]

    both = await ok(live_server, owner, RESTART, input={"chatroomId": room})
    assert {s["role"]: s["generation"] for s in both} == {"builder": 3, "reviewer": 3}

    listed = by_role((await ok(live_server, owner, ROOM_AGENTS, id=room))["agents"])
    assert {r: (s["generation"], s["desiredState"]) for r, s in listed.items()} == {
        "builder": (3, "RUNNING"),
        "reviewer": (3, "RUNNING"),
    }
    (mine,) = await ok(live_server, owner, MACHINES)
    assert sorted(s["role"] for s in mine["agents"]) == ["builder", "reviewer"]
    rows = by_role(await db_slots(live_server.db_url, room))
    assert rows["reviewer"]["workdir"] == "/srv/other" and rows["builder"]["generation"] == 3


async def test_every_slot_change_is_an_agent_updated_event(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    machine = await register(live_server, owner, "events box")
    head = await last_seq(live_server, owner, room)

    (slot,) = await start(live_server, owner, room, machine["id"], roles=["builder"])
    daemon = new_daemon()
    claimed = await claim(live_server, owner, slot, daemon)
    await ok(live_server, owner, STOP, input={"chatroomId": room, "roles": ["builder"]})
    await ok(live_server, owner, RESTART, input={"chatroomId": room, "roles": ["builder"]})

    async with subscription(
        live_server, owner, "graphql-transport-ws", AGENT_EVENTS, c=room, after=head
    ) as stream:
        events = [(await stream.next())["roomEvents"] for _ in range(4)]
    assert [e["kind"] for e in events] == ["AGENT_UPDATED"] * 4
    agents = [e["agent"] for e in events]
    assert [(a["desiredState"], a["generation"], a["state"]) for a in agents] == [
        ("RUNNING", 1, "STOPPED"),  # started
        ("RUNNING", 1, "STARTING"),  # claimed
        ("STOPPED", 1, "STARTING"),  # stopped (the daemon reports STOPPED when it is)
        ("RUNNING", 2, "STARTING"),  # restarted
    ]
    assert {a["machineName"] for a in agents} == {"events box"}
    assert agents[1]["daemonId"] == daemon and agents[0]["id"] == slot["id"]
    # The stop revoked the claimed slot's token.
    assert await token_revoked(live_server.db_url, claimed["token"])


async def test_a_completed_room_stops_its_slots(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    machine = await register(live_server, owner)
    (slot,) = await start(live_server, owner, room, machine["id"], roles=["reviewer"])
    claimed = await claim(live_server, owner, slot, new_daemon())

    await ok(live_server, owner, COMPLETE_ROOM, c=room)
    (row,) = await db_slots(live_server.db_url, room)
    assert row["desired_state"] == "stopped" and row["token_session_id"] is None
    assert await token_revoked(live_server.db_url, claimed["token"])
