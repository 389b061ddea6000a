"""Documents and helpers of the machine and agent-slot tests (SPEC §10). Calls go through the
real server with the gql client (tests.security.common's `call`/`ok`); the database is read
directly (tests.support.room_rows) only to check what was committed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.accounts.test_members import ACCEPT, INVITE, REMOVE
from tests.security.common import new_room, new_user, ok
from tests.support.api import subscription
from tests.support.room_rows import db_room_row, db_slots, db_token_revoked
from tests.support.server import LiveServer

SLOT = (
    "id chatroomId role machineId machineName harness workdir model command freshSession"
    " taskTimeoutSeconds desiredState generation state activity lastError taskId daemonId"
    " updatedAt reportedAt"
)
MACHINE = "id name harnesses { name version } online lastSeenAt createdAt"

REGISTER = (
    "mutation($input: RegisterMachineInput!) { registerMachine(input: $input)"
    f" {{ {MACHINE} agents {{ id }} }} }}"
)
HEARTBEAT = (
    "mutation($input: MachineHeartbeatInput!) { machineHeartbeat(input: $input)"
    f" {{ {MACHINE} }} }}"
)
MACHINES = f"query {{ machines {{ {MACHINE} agents {{ {SLOT} }} }} }}"
MACHINE_Q = f"query($id: ID!) {{ machine(id: $id) {{ {MACHINE} agents {{ role }} }} }}"
START = f"mutation($input: StartAgentsInput!) {{ startAgents(input: $input) {{ {SLOT} }} }}"
STOP = f"mutation($input: AgentsInput!) {{ stopAgents(input: $input) {{ {SLOT} }} }}"
RESTART = f"mutation($input: AgentsInput!) {{ restartAgents(input: $input) {{ {SLOT} }} }}"
CLAIM_SLOT = (
    "mutation($input: ClaimAgentSlotInput!) { claimAgentSlot(input: $input)"
    f" {{ token slot {{ {SLOT} }} }} }}"
)
REPORT = (
    f"mutation($input: ReportAgentStateInput!) {{ reportAgentState(input: $input) {{ {SLOT} }} }}"
)
MACHINE_AGENTS = (
    "subscription($m: ID!) { machineAgents(machineId: $m)"
    f" {{ machine {{ id name agents {{ role }} }} agents {{ {SLOT} }} }} }}"
)
ROOM_AGENTS = f"query($id: ID!) {{ chatroom(id: $id) {{ id agents {{ {SLOT} }} }} }}"
AGENT_EVENTS = (
    "subscription($c: ID!, $after: Int) { roomEvents(chatroomId: $c, afterSeq: $after)"
    f" {{ seq kind agent {{ {SLOT} }} }} }}"
)
LAST_SEQ = "query($id: ID!) { chatroom(id: $id) { lastEventSeq } }"

WORKDIR = "/srv/project"

# The database readers these tests use are tests.support.room_rows'; this is the name they know.
token_revoked = db_token_revoked


def new_daemon() -> str:
    return str(uuid.uuid4())


async def register(
    server: LiveServer, token: str, name: str = "box", *, daemon: str | None = None, **more: Any
) -> dict[str, Any]:
    harnesses = more.pop("harnesses", [{"name": "claude", "version": "2.0.1"}])
    fields = {"name": name, "harnesses": harnesses, "daemonId": daemon or new_daemon(), **more}
    machine: dict[str, Any] = await ok(server, token, REGISTER, input=fields)
    return machine


async def start(
    server: LiveServer, token: str, room: str, machine: str, **fields: Any
) -> list[dict[str, Any]]:
    fields = {
        "chatroomId": room,
        "machineId": machine,
        "harness": "claude",
        "workdir": WORKDIR,
        **fields,
    }
    slots: list[dict[str, Any]] = await ok(server, token, START, input=fields)
    return slots


async def claim(
    server: LiveServer, token: str, slot: dict[str, Any], daemon: str
) -> dict[str, Any]:
    fields = {"slotId": slot["id"], "daemonId": daemon, "generation": slot["generation"]}
    claimed: dict[str, Any] = await ok(server, token, CLAIM_SLOT, input=fields)
    return claimed


async def join(server: LiveServer, owner: str, room: str, token: str, role: str) -> None:
    """`token`'s user becomes a MEMBER or VIEWER of the room (an invite link, accepted)."""
    made = await ok(server, owner, INVITE, r=room, role=role)
    await ok(server, token, ACCEPT, c=made["code"])


async def remove(server: LiveServer, owner: str, room: str, user_id: str) -> None:
    await ok(server, owner, REMOVE, r=room, u=user_id)


async def last_seq(server: LiveServer, token: str, room: str) -> int:
    return int((await ok(server, token, LAST_SEQ, id=room))["lastEventSeq"])


async def agent_events(server: LiveServer, token: str, room: str, after: int = 0) -> list[Any]:
    """The slots of the AGENT_UPDATED events after `after`, up to the room's head now."""
    head = await last_seq(server, token, room)
    found = []
    async with subscription(
        server, token, "graphql-transport-ws", AGENT_EVENTS, c=room, after=after
    ) as stream:
        seq = after
        while seq < head:
            event = (await stream.next())["roomEvents"]
            seq = event["seq"]
            if event["kind"] == "AGENT_UPDATED":
                found.append(event["agent"])
    return found


async def db_room(url: str, room: str) -> dict[str, Any]:
    """What a refused call must leave alone: the room's slots and its event head."""
    head = (await db_room_row(url, room))["last_event_seq"]
    return {"slots": await db_slots(url, room), "seq": head}


@dataclass(frozen=True)
class SharedRoom:
    """A room its owner shares with one member, each running one role on their own machine
    (the owner the reviewer, the member the builder), both slots claimed."""

    owner: str
    member: str
    member_id: str
    room: str
    owners_box: dict[str, Any]
    members_box: dict[str, Any]
    reviewer: dict[str, Any]  # the owner's slot, as started
    slot: dict[str, Any]  # the member's slot, as started
    daemon: str  # the member's daemon
    claimed: dict[str, Any]  # the member's claim (slot and token)
    owners: dict[str, Any]  # the owner's claim


async def shared_room(server: LiveServer) -> SharedRoom:
    owner, _ = await new_user(server, "owner")
    member, member_id = await new_user(server, "member")
    room = (await new_room(server, owner))["id"]
    await join(server, owner, room, member, "MEMBER")
    owners_box = await register(server, owner, "owner box")
    members_box = await register(server, member, "member box")
    (reviewer,) = await start(server, owner, room, owners_box["id"], roles=["reviewer"])
    (slot,) = await start(server, member, room, members_box["id"], roles=["builder"])
    daemon = new_daemon()
    claimed = await claim(server, member, slot, daemon)
    owners = await claim(server, owner, reviewer, new_daemon())
    return SharedRoom(
        owner,
        member,
        member_id,
        room,
        owners_box,
        members_box,
        reviewer,
        slot,
        daemon,
        claimed,
        owners,
    )
