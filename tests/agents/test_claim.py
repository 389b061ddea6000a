"""Claiming a slot and reporting its state: newest claim wins, each claim mints the slot's own
token (its room and role only) and revokes the previous one, and only the serving daemon
reports."""

from __future__ import annotations

from tests.agents.common import (
    CLAIM_SLOT,
    REPORT,
    claim,
    db_slots,
    last_seq,
    new_daemon,
    register,
    start,
    token_revoked,
)
from tests.security.common import SEND, TASK_AVAILABLE, TASKS, call, new_room, new_user, ok
from tests.support.api import subscription
from tests.support.server import LiveServer


async def test_the_claimed_token_acts_only_for_its_room_and_role(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    other_room = (await new_room(live_server, owner))["id"]
    machine = await register(live_server, owner)
    (slot,) = await start(live_server, owner, room, machine["id"], roles=["builder"])
    daemon = new_daemon()

    claimed = await claim(live_server, owner, slot, daemon)
    assert claimed["slot"]["daemonId"] == daemon and claimed["slot"]["state"] == "STARTING"
    assert claimed["token"].startswith("chr_")
    token = claimed["token"]

    assert await ok(live_server, token, TASKS, c=room) == []
    async with subscription(
        live_server, token, "graphql-transport-ws", TASK_AVAILABLE, c=room, r="builder"
    ) as stream:
        await ok(live_server, owner, SEND, input={"chatroomId": room, "content": "build it"})
        # The pair's entry point is the builder: the request is delivered to it.
        assert (await stream.next())["taskAvailable"]["kind"] == "TASK"
    async with subscription(
        live_server, token, "graphql-transport-ws", TASK_AVAILABLE, c=room, r="reviewer"
    ) as stream:
        assert (await stream.expect_error())[0] == "FORBIDDEN"
    assert (await call(live_server, token, TASKS, c=other_room)).code == "NOT_FOUND"
    # A slot token is an agent token: it cannot claim slots itself.
    refused = await call(
        live_server,
        token,
        CLAIM_SLOT,
        input={"slotId": slot["id"], "daemonId": daemon, "generation": 1},
    )
    assert refused.code == "FORBIDDEN"


async def test_a_second_claim_revokes_the_first_token(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    machine = await register(live_server, owner)
    (slot,) = await start(live_server, owner, room, machine["id"], roles=["reviewer"])
    first_daemon, second_daemon = new_daemon(), new_daemon()
    first = await claim(live_server, owner, slot, first_daemon)

    async with subscription(
        live_server, first["token"], "graphql-transport-ws", TASK_AVAILABLE, c=room, r="reviewer"
    ) as waiting:
        second = await claim(live_server, owner, slot, second_daemon)
        # The first harness's open subscription ends, and its next request is refused.
        assert (await waiting.expect_error())[0] == "UNAUTHENTICATED"
    assert (await call(live_server, first["token"], TASKS, c=room)).code == "UNAUTHENTICATED"
    assert await ok(live_server, second["token"], TASKS, c=room) == []
    assert second["slot"]["daemonId"] == second_daemon

    # The first daemon no longer serves the slot: its report is a CONFLICT, changing nothing.
    before = await db_slots(live_server.db_url, room)
    late = await call(
        live_server,
        owner,
        REPORT,
        input={
            "slotId": slot["id"],
            "daemonId": first_daemon,
            "generation": 1,
            "state": "WAITING",
        },
    )
    assert late.code == "CONFLICT" and "another daemon" in late.message.lower()
    assert await db_slots(live_server.db_url, room) == before

    # A claim of a generation that is no longer current is a CONFLICT too.
    await ok(
        live_server,
        owner,
        "mutation($c: ID!) { restartAgents(input: {chatroomId: $c}) { generation } }",
        c=room,
    )
    stale = await call(
        live_server,
        owner,
        CLAIM_SLOT,
        input={"slotId": slot["id"], "daemonId": first_daemon, "generation": 1},
    )
    assert stale.code == "CONFLICT" and "machineAgents" in stale.message
    assert not await token_revoked(live_server.db_url, second["token"])


async def test_reports_of_the_serving_daemon(live_server: LiveServer) -> None:
    owner, _ = await new_user(live_server, "owner")
    room = (await new_room(live_server, owner))["id"]
    machine = await register(live_server, owner)
    (slot,) = await start(live_server, owner, room, machine["id"], roles=["builder"])
    daemon = new_daemon()
    claimed = await claim(live_server, owner, slot, daemon)

    def report(state: str, **fields: object) -> dict[str, object]:
        fields = {"generation": claimed["slot"]["generation"], **fields}
        return {"slotId": slot["id"], "daemonId": daemon, "state": state, **fields}

    working = await ok(
        live_server,
        owner,
        REPORT,
        input=report("WORKING", activity="Bash: " + "x" * 300, lastError="e" * 2500),
    )
    assert working["state"] == "WORKING" and working["reportedAt"]
    assert len(working["activity"]) == 200 and working["activity"].endswith("…")
    assert len(working["lastError"]) == 2000
    head = await last_seq(live_server, owner, room)
    # The same report again records reportedAt only: no event.
    same = await ok(
        live_server,
        owner,
        REPORT,
        input=report("WORKING", activity="Bash: " + "x" * 300, lastError="e" * 2500),
    )
    assert same["reportedAt"] > working["reportedAt"]
    assert await last_seq(live_server, owner, room) == head

    stopped = await ok(live_server, owner, REPORT, input=report("STOPPED"))
    assert stopped["state"] == "STOPPED" and stopped["activity"] is None
    assert await token_revoked(live_server.db_url, claimed["token"])
    assert await last_seq(live_server, owner, room) == head + 1
