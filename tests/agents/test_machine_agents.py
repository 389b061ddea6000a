"""machineAgents: the daemon's view of its machine, at once and after every change to any of
its slots, while the changes are made; rooms its owner may no longer steer drop out; a revoked
login ends it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents.common import (
    HEARTBEAT,
    MACHINE_AGENTS,
    RESTART,
    STOP,
    join,
    new_daemon,
    register,
    remove,
    start,
)
from tests.security.common import PROTOCOLS, REVOKE, new_room, new_user, ok
from tests.support.api import Stream, subscription
from tests.support.server import LiveServer


def slots(item: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {
        s["role"]: (s["desiredState"], s["generation"]) for s in item["machineAgents"]["agents"]
    }


async def next_view(stream: Stream) -> dict[str, tuple[str, int]]:
    return slots(await stream.next())


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_yields_on_start_stop_restart(live_server: LiveServer, protocol: Any) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    daemon = new_daemon()
    machine = await register(live_server, owner, "daemon box", daemon=daemon)
    async with subscription(live_server, owner, protocol, MACHINE_AGENTS, m=machine["id"]) as s:
        first = await s.next()
        assert first["machineAgents"]["machine"]["name"] == "daemon box"
        assert slots(first) == {}
        # Each change wakes the subscription; each read waits on what the change made.
        await start(live_server, owner, room, machine["id"])
        assert await next_view(s) == {"builder": ("RUNNING", 1), "reviewer": ("RUNNING", 1)}
        await ok(live_server, owner, STOP, input={"chatroomId": room, "roles": ["reviewer"]})
        assert await next_view(s) == {"builder": ("RUNNING", 1), "reviewer": ("STOPPED", 1)}
        await ok(live_server, owner, RESTART, input={"chatroomId": room})
        assert await next_view(s) == {"builder": ("RUNNING", 2), "reviewer": ("RUNNING", 2)}
        # A heartbeat, or a start that changes nothing, yields nothing; the next real change
        # is the next item.
        beat = {"machineId": machine["id"], "daemonId": daemon}
        await ok(live_server, owner, HEARTBEAT, input=beat)
        await start(live_server, owner, room, machine["id"])
        await ok(live_server, owner, STOP, input={"chatroomId": room})
        assert await next_view(s) == {"builder": ("STOPPED", 2), "reviewer": ("STOPPED", 2)}


async def test_a_room_its_owner_may_no_longer_steer_drops_out(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    member, member_id = await new_user(live_server, "member")
    room = (await new_room(live_server, owner))["id"]
    own_room = (await new_room(live_server, member))["id"]
    await join(live_server, owner, room, member, "MEMBER")
    machine = await register(live_server, member, "member box")
    await start(live_server, member, room, machine["id"], roles=["builder"])
    await start(live_server, member, own_room, machine["id"], roles=["reviewer"])
    view = "graphql-transport-ws"
    async with subscription(live_server, member, view, MACHINE_AGENTS, m=machine["id"]) as s:
        first = (await s.next())["machineAgents"]["agents"]
        assert sorted((a["chatroomId"], a["role"]) for a in first) == sorted(
            [(room, "builder"), (own_room, "reviewer")]
        )
        await remove(live_server, owner, room, member_id)
        after = (await s.next())["machineAgents"]["agents"]
        assert [(a["chatroomId"], a["role"]) for a in after] == [(own_room, "reviewer")]


async def test_ends_when_the_daemons_login_is_revoked(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    machine = await register(live_server, owner)
    async with subscription(
        live_server, owner, "graphql-transport-ws", MACHINE_AGENTS, m=machine["id"]
    ) as s:
        await s.next()
        await ok(live_server, owner, REVOKE)
        assert (await s.expect_error())[0] == "UNAUTHENTICATED"
