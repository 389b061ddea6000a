"""Machines over the real server: a daemon registers its computer, heartbeats, and updates it
by id; a machine is its owner's alone (another user, or an agent token, cannot see or use it)."""

from __future__ import annotations

import uuid

from tests.agents.common import (
    HEARTBEAT,
    MACHINE_AGENTS,
    MACHINE_Q,
    MACHINES,
    REGISTER,
    new_daemon,
    register,
)
from tests.security.common import agent_token, call, new_room, new_user, ok
from tests.support import dbutil
from tests.support.api import subscription
from tests.support.server import LiveServer


async def test_register_heartbeat_and_update(live_server: LiveServer) -> None:
    token, user_id = await new_user(live_server, "ada")
    daemon = new_daemon()
    machine = await register(live_server, token, "laptop", daemon=daemon)
    assert machine["name"] == "laptop" and machine["online"] is True
    assert machine["harnesses"] == [{"name": "claude", "version": "2.0.1"}]
    assert machine["agents"] == []
    row = await dbutil.fetchrow(
        live_server.db_url, "SELECT * FROM machines WHERE id = $1", uuid.UUID(machine["id"])
    )
    assert row is not None and str(row["owner_id"]) == user_id and str(row["daemon_id"]) == daemon

    beat = await ok(
        live_server, token, HEARTBEAT, input={"machineId": machine["id"], "daemonId": daemon}
    )
    assert beat["online"] is True and beat["lastSeenAt"] > machine["lastSeenAt"]

    # Silent for more than 30 s: offline (the heartbeat is what keeps it online).
    await dbutil.execute(
        live_server.db_url,
        "UPDATE machines SET last_seen_at = now() - interval '31 seconds' WHERE id = $1",
        uuid.UUID(machine["id"]),
    )
    (listed,) = await ok(live_server, token, MACHINES)
    assert listed["id"] == machine["id"] and listed["online"] is False

    # A new daemon start registers the same machine by id: name, harnesses, daemon updated.
    again = await register(
        live_server,
        token,
        "laptop 2",
        machineId=machine["id"],
        harnesses=[{"name": "codex"}, {"name": "opencode", "version": "0.9"}],
    )
    assert again["id"] == machine["id"] and again["name"] == "laptop 2" and again["online"]
    assert again["harnesses"] == [
        {"name": "codex", "version": None},
        {"name": "opencode", "version": "0.9"},
    ]
    assert [m["id"] for m in await ok(live_server, token, MACHINES)] == [machine["id"]]
    found = await ok(live_server, token, MACHINE_Q, id=machine["id"])
    assert found["name"] == "laptop 2"


async def test_a_machine_is_its_owners_alone(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    other, _ = await new_user(live_server, "other")
    machine = await register(live_server, owner, "mine")
    daemon = new_daemon()

    assert await ok(live_server, other, MACHINES) == []
    assert await ok(live_server, other, MACHINE_Q, id=machine["id"]) is None
    beat = await call(
        live_server, other, HEARTBEAT, input={"machineId": machine["id"], "daemonId": daemon}
    )
    assert beat.code == "NOT_FOUND" and "chatroom machine list" in beat.message
    # Registering with someone else's id answers NOT_FOUND (the CLI then registers anew).
    taken = await call(
        live_server,
        other,
        REGISTER,
        input={"machineId": machine["id"], "name": "x", "harnesses": [], "daemonId": daemon},
    )
    assert taken.code == "NOT_FOUND"
    unknown = await call(
        live_server,
        owner,
        REGISTER,
        input={"machineId": str(uuid.uuid4()), "name": "x", "harnesses": [], "daemonId": daemon},
    )
    assert unknown.code == "NOT_FOUND"
    async with subscription(
        live_server, other, "graphql-transport-ws", MACHINE_AGENTS, m=machine["id"]
    ) as stream:
        assert (await stream.expect_error())[0] == "NOT_FOUND"
    row = await dbutil.fetchrow(
        live_server.db_url, "SELECT name FROM machines WHERE id = $1", uuid.UUID(machine["id"])
    )
    assert row is not None and row["name"] == "mine"

    # An agent token, even the owner's, manages no machine.
    room = await new_room(live_server, owner)
    agent, _ = await agent_token(live_server, owner, room["id"], "builder")
    for doc, variables in (
        (MACHINES, {}),
        (MACHINE_Q, {"id": machine["id"]}),
        (HEARTBEAT, {"input": {"machineId": machine["id"], "daemonId": daemon}}),
        (REGISTER, {"input": {"name": "x", "harnesses": [], "daemonId": daemon}}),
    ):
        refused = await call(live_server, agent, doc, **variables)
        assert refused.code == "FORBIDDEN", (doc, refused)
        assert "chatroom auth login" in refused.message


async def test_bad_machine_input_is_coded(live_server: LiveServer) -> None:
    token, _ = await new_user(live_server, "bad")
    for fields, says in (
        ({"name": " ", "harnesses": [], "daemonId": new_daemon()}, "name"),
        ({"name": "x", "harnesses": [], "daemonId": "not-a-uuid"}, "daemonId"),
        ({"name": "x", "harnesses": [{"name": ""}], "daemonId": new_daemon()}, "harness name"),
        ({"name": "x", "harnesses": [{"name": "c"}] * 17, "daemonId": new_daemon()}, "harnesses"),
    ):
        refused = await call(live_server, token, REGISTER, input=fields)
        assert refused.code == "BAD_USER_INPUT", (fields, refused)
        assert says in refused.message
    assert await ok(live_server, token, MACHINES) == []
