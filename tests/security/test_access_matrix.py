"""Who may call what (SPEC §5, anchor W16): EVERY root field of schema.graphql against every kind
of caller that must be refused, through the real server and the real gql transports.

The fields are enumerated from the committed SDL, so a new field without a MATRIX entry fails
(``test_matrix_covers_every_field`` and its own parametrized case).

Callers (SPEC §5 and §12):
  none               no Authorization at all
  garbage            a made-up token of the right shape
  revoked            a real token, revoked (revokeSession)
  expired            a real token whose session expired (expires_at set in the past)
  owner              the room's owner
  member             a member of the room (invited with role MEMBER): sends and steers
  viewer             a viewer of the room (invited with role VIEWER): reads only
  other_user         a stranger: a valid token of another user (owns rooms of their own)
  admin              the server's admin (its first account), owner of a room of its own: no
                     power over anyone else's room
  agent_other_room   an agent token of the owner, for another room of the same owner
  agent_other_role   an agent token for the room, minted for another role (reviewer acting as
                     builder)
  agent_own          an agent token for the room and the role; posting as `user` or managing
                     the room is still refused

Expected: UNAUTHENTICATED for the four token failures; NOT_FOUND for a room the caller cannot
see, answered exactly like a room that does not exist (same code, same message but for the
id); FORBIDDEN for an agent token acting outside its role or managing anything, for a viewer
doing anything but read, and for a member doing what is the owner's alone (OWNER_ONLY). The
owner and the member act on a fresh room of their own per call (World.fresh), so what they
are allowed to do changes nothing the other cases look at. Public fields
(PUBLIC) work for every caller, whatever token it sends."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import pytest
from graphql import build_schema

from tests.accounts import passwords
from tests.agents.common import (
    CLAIM_SLOT,
    HEARTBEAT,
    MACHINE_AGENTS,
    MACHINE_Q,
    MACHINES,
    REGISTER,
    REPORT,
    RESTART,
    START,
    STOP,
    WORKDIR,
    claim,
    new_daemon,
    register,
    start,
)
from tests.security.common import (
    ADD_BACKLOG,
    CLAIM,
    CLASSIFY,
    HANDOFF,
    PROTOCOLS,
    REQUEST_LOGIN,
    REVOKE,
    ROOM_EVENTS,
    SCHEMA_FILE,
    SEND,
    TASK_AVAILABLE,
    TASKS,
    Outcome,
    Stream,
    agent_token,
    call,
    current_session,
    expire_session,
    new_room,
    new_user,
    ok,
    remember,
    subscribe_first,
)
from tests.support.gql_client import gql_ws
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

SIGN_UP = (
    "mutation($input: SignUpInput!) { signUp(input: $input) { token user { id displayName } } }"
)
SIGN_IN = (
    "mutation($input: SignInInput!) { signIn(input: $input) { token user { id displayName } } }"
)
UPGRADE = "mutation($input: UpgradeGuestInput!) { upgradeGuest(input: $input) { id } }"
SIGNUP_INVITE = "mutation { createSignupInvite { code expiresAt } }"
ROOM_INVITE = (
    "mutation($input: CreateRoomInviteInput!) { createRoomInvite(input: $input)"
    " { code role expiresAt } }"
)
ACCEPT_INVITE = "mutation($code: String!) { acceptRoomInvite(code: $code) { id } }"

SDL = build_schema(SCHEMA_FILE.read_text())
ROOTS = {
    "Query": SDL.query_type,
    "Mutation": SDL.mutation_type,
    "Subscription": SDL.subscription_type,
}
SCHEMA_FIELDS = [(root, name) for root, t in ROOTS.items() if t for name in t.fields]

# Fields that need no token at all, listed explicitly.
PUBLIC = {"createGuestSession", "requestCliLogin", "teams", "cliLoginStatus", "signUp", "signIn"}
PASSWORD = passwords.MATRIX  # of the world's account (the server's first: its admin)

TOKEN_FAILURES = ("none", "garbage", "revoked", "expired")
AGENTS = ("agent_other_room", "agent_other_role", "agent_own")
STRANGERS = ("other_user", "admin")
ACTORS = ("owner", "member")  # allowed to change the room: each call gets a fresh one
CALLERS = (*TOKEN_FAILURES, *ACTORS, "viewer", *STRANGERS, *AGENTS)
QUERIES = {name for root, name in SCHEMA_FIELDS if root == "Query"}
# What only the room's owner does; members steer the work (send, queue, backlog, interrupt,
# agents), viewers only read (every query, and roomEvents).
OWNER_ONLY = {
    "renameChatroom",
    "completeChatroom",
    "createRoomInvite",
    "setMemberRole",
    "removeMember",
}
READS = QUERIES | {"roomEvents"}
# Allowed to the owner and members, but the world's state makes the domain say no (nobody
# holds a task to hand off or classify; the pending task is not in progress to release).
DOMAIN_REFUSED = {"sendHandoff", "classifyTask", "releaseTask"}
# A's machine and its slot (SPEC §10): A's alone; anyone else's call answers like a missing one.
OWN_MACHINE = {"machineHeartbeat", "claimAgentSlot", "reportAgentState", "machineAgents"}
ACCESS_CODES = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"}


# --- the world -----------------------------------------------------------------------------------


@dataclass
class World:
    """Owner A: room `room` (pair) with a pending user task and a backlog task, a member M and
    a viewer V; a second room `room2`; `invite_room`, whose invites the acceptRoomInvite cases
    use. User B owns `room_b` with a pending task. The admin (the server's first account) owns
    `admin_room`. Agent tokens of A: builder and reviewer of `room`, builder of `room2`."""

    server: LiveServer
    owner: str
    owner_id: str
    owner_session: str
    room: str
    room2: str
    invite_room: str
    pending_task: str
    backlog_task: str
    member_id: str
    viewer_id: str
    other: str
    other_id: str
    room_b: str
    task_b: str
    admin_room: str
    machine: str
    slot: str
    tokens: dict[str, str | None]

    def token(self, caller: str) -> str | None:
        return self.tokens[caller]

    async def fresh(self) -> World:
        """The same world but for a new room of A's (M its member, a pending task, a backlog
        task) and, as A's "other session", a new agent token's: for callers whose calls
        succeed and change things."""
        member = self.tokens["member"]
        assert member is not None
        room = (await new_room(self.server, self.owner, name="A's fresh room"))["id"]
        await invite(self.server, self.owner, room, "MEMBER", member)
        sent = await ok(self.server, self.owner, SEND, input={"chatroomId": room, "content": "x"})
        backlog = await ok(
            self.server, self.owner, ADD_BACKLOG, input={"chatroomId": room, "content": "later"}
        )
        _, session = await agent_token(self.server, self.owner, room, "reviewer")
        return replace(
            self,
            room=room,
            pending_task=sent["task"]["id"],
            backlog_task=backlog["id"],
            owner_session=session,
        )


async def invite(server: LiveServer, owner: str, room: str, role: str, token: str) -> None:
    code = (await ok(server, owner, ROOM_INVITE, input={"chatroomId": room, "role": role}))["code"]
    assert (await ok(server, token, ACCEPT_INVITE, code=code))["id"] == room


@pytest.fixture(scope="module")
async def world(server: LiveServer, module_db: PgDatabase) -> World:
    signed = await ok(
        server, None, SIGN_UP, input={"username": "matrix-admin", "password": PASSWORD}
    )
    admin = remember(signed["token"])
    admin_room = (await new_room(server, admin, name="the admin's room"))["id"]
    owner, owner_id = await new_user(server, "owner")
    room = (await new_room(server, owner, name="A's room"))["id"]
    room2 = (await new_room(server, owner, name="A's other room"))["id"]
    invite_room = (await new_room(server, owner, name="A's open house"))["id"]
    member, member_id = await new_user(server, "member")
    viewer, viewer_id = await new_user(server, "viewer")
    await invite(server, owner, room, "MEMBER", member)
    await invite(server, owner, room, "VIEWER", viewer)
    sent = await ok(server, owner, SEND, input={"chatroomId": room, "content": "build it"})
    backlog = await ok(server, owner, ADD_BACKLOG, input={"chatroomId": room, "content": "later"})
    machine = await register(server, owner, "A's machine")
    (slot,) = await start(server, owner, room, machine["id"], roles=["builder"])
    other, other_id = await new_user(server, "other")
    room_b = (await new_room(server, other, name="B's room"))["id"]
    sent_b = await ok(server, other, SEND, input={"chatroomId": room_b, "content": "B's work"})

    revoked, _ = await new_user(server, "revoked")
    await ok(server, revoked, REVOKE)
    expired, _ = await new_user(server, "expired")
    await expire_session(module_db.url, await current_session(server, expired))

    tokens: dict[str, str | None] = {
        "none": None,
        "garbage": "chr_" + secrets.token_urlsafe(32),
        "revoked": revoked,
        "expired": expired,
        "owner": owner,
        "member": member,
        "viewer": viewer,
        "other_user": other,
        "admin": admin,
        "agent_other_room": (await agent_token(server, owner, room2, "builder"))[0],
        "agent_other_role": (await agent_token(server, owner, room, "reviewer"))[0],
        "agent_own": (await agent_token(server, owner, room, "builder"))[0],
    }
    return World(
        server=server,
        owner=owner,
        owner_id=owner_id,
        owner_session=await current_session(server, owner),
        room=room,
        room2=room2,
        invite_room=invite_room,
        pending_task=sent["task"]["id"],
        backlog_task=backlog["id"],
        member_id=member_id,
        viewer_id=viewer_id,
        other=other,
        other_id=other_id,
        room_b=room_b,
        task_b=sent_b["task"]["id"],
        admin_room=admin_room,
        machine=machine["id"],
        slot=slot["id"],
        tokens=tokens,
    )


# --- the matrix ----------------------------------------------------------------------------------

Vars = Callable[[World, str], Awaitable[dict[str, Any]]]


def const(**values: Any) -> Vars:
    async def make(w: World, caller: str) -> dict[str, Any]:
        return {k: (v(w) if callable(v) else v) for k, v in values.items()}

    return make


def room_id(w: World) -> str:
    return w.room


async def fresh_code(w: World, caller: str) -> dict[str, Any]:
    """A pending device-login code of its own for each call."""
    req = await ok(w.server, None, REQUEST_LOGIN, d=f"matrix {caller}")
    return {"code": req["userCode"]}


async def fresh_invite(w: World, caller: str) -> dict[str, Any]:
    """A viewer invite of its own for each call, to A's `invite_room` (accepting it changes
    nothing another case looks at)."""
    made = await ok(
        w.server, w.owner, ROOM_INVITE, input={"chatroomId": w.invite_room, "role": "VIEWER"}
    )
    return {"code": made["code"]}


async def fresh_account(w: World, caller: str) -> dict[str, Any]:
    """A username of its own for each call (signUp)."""
    return {"input": {"username": f"u-{secrets.token_hex(6)}", "password": PASSWORD}}


def inputs(**values: Any) -> Vars:
    base = const(**values)

    async def make(w: World, caller: str) -> dict[str, Any]:
        return {"input": await base(w, caller)}

    return make


def _mine(w: World, caller: str) -> bool:
    """A person with a working token (their own machine is theirs to use)."""
    return caller in (*ACTORS, "viewer", *STRANGERS)


async def start_vars(w: World, caller: str) -> dict[str, Any]:
    """Every person starts on a machine of their own; everyone else names A's."""
    token = w.token(caller)
    machine = (await register(w.server, token, caller))["id"] if _mine(w, caller) else w.machine
    return {
        "input": {
            "chatroomId": w.room,
            "machineId": machine,
            "harness": "claude",
            "workdir": WORKDIR,
        }
    }


async def slots_vars(w: World, caller: str) -> dict[str, Any]:
    """The owner and the member get a slot on their own machine in their fresh room first."""
    if caller in ACTORS:
        token = w.token(caller)
        machine = (await register(w.server, token, caller))["id"]
        await start(w.server, token, w.room, machine, roles=["reviewer"])
    return {"input": {"chatroomId": w.room}}


async def claim_vars(w: World, caller: str) -> dict[str, Any]:
    return {"input": {"slotId": w.slot, "daemonId": new_daemon(), "generation": 1}}


async def report_vars(w: World, caller: str) -> dict[str, Any]:
    """A's slot, claimed by A's daemon: the owner reports as that daemon."""
    daemon = new_daemon()
    await claim(w.server, w.owner, {"id": w.slot, "generation": 1}, daemon)
    fields = {"slotId": w.slot, "daemonId": daemon, "generation": 1, "state": "WAITING"}
    return {"input": fields}


async def send_vars(w: World, caller: str) -> dict[str, Any]:
    # agent_own tries to post as the user; agent_other_role as a role that is not its own.
    sender = "builder" if caller == "agent_other_role" else "user"
    return {"input": {"chatroomId": w.room, "content": "hello", "senderRole": sender}}


@dataclass(frozen=True)
class Field:
    doc: str
    vars: Vars
    # public: no token needed; account: a token, no room; room: a token and a visible room
    kind: Literal["public", "account", "room"]
    # How an agent token is treated: read (allowed in its room), role (only as its own role),
    # manage (never: room management, tokens, logins, other sessions).
    agent: Literal["read", "role", "manage"] = "read"


def _task_ref(task: Callable[[World], str]) -> Vars:
    return inputs(chatroomId=room_id, taskId=task)


def _pending(w: World) -> str:
    return w.pending_task


def _backlog(w: World) -> str:
    return w.backlog_task


MATRIX: dict[str, Field] = {
    # --- Query
    "me": Field("query { me { id } }", const(), "account"),
    "teams": Field("query { teams { id } }", const(), "public"),
    "chatrooms": Field("query { chatrooms { id } }", const(), "account"),
    "chatroom": Field("query($c: ID!) { chatroom(id: $c) { id name } }", const(c=room_id), "room"),
    "messages": Field(
        "query($c: ID!) { messages(chatroomId: $c) { nodes { id content } } }",
        const(c=room_id),
        "room",
    ),
    "tasks": Field(TASKS, const(c=room_id), "room"),
    "taskCounts": Field(
        "query($c: ID!) { taskCounts(chatroomId: $c) { pending } }", const(c=room_id), "room"
    ),
    "pendingTasks": Field(
        "query($c: ID!, $r: String!) { pendingTasks(chatroomId: $c, role: $r) { id } }",
        const(c=room_id, r="builder"),
        "room",
        "role",
    ),
    "contextWindow": Field(
        "query($c: ID!, $r: String!) { contextWindow(chatroomId: $c, role: $r)"
        " { originMessage { id } truncated } }",
        const(c=room_id, r="builder"),
        "room",
        "role",
    ),
    "rolePrompt": Field(
        "query($c: ID!, $r: String!) { rolePrompt(chatroomId: $c, role: $r) { role prompt } }",
        const(c=room_id, r="builder"),
        "room",
        "role",
    ),
    "sessions": Field("query { sessions { id } }", const(), "account", "manage"),
    "cliLoginRequest": Field(
        "query($code: String!) { cliLoginRequest(userCode: $code) { status } }",
        fresh_code,
        "account",
        "manage",
    ),
    # --- Mutation
    "createGuestSession": Field(
        'mutation { createGuestSession(displayName: "matrix") { token } }', const(), "public"
    ),
    "createChatroom": Field(
        'mutation { createChatroom(input: {name: "matrix"}) { id } }', const(), "account", "manage"
    ),
    "renameChatroom": Field(
        'mutation($c: ID!) { renameChatroom(chatroomId: $c, name: "pwned") { id } }',
        const(c=room_id),
        "room",
        "manage",
    ),
    "completeChatroom": Field(
        "mutation($c: ID!) { completeChatroom(chatroomId: $c) { id } }",
        const(c=room_id),
        "room",
        "manage",
    ),
    "interruptChatroom": Field(
        "mutation($c: ID!) { interruptChatroom(chatroomId: $c) { id } }",
        const(c=room_id),
        "room",
        "manage",
    ),
    "joinChatroom": Field(
        "mutation($c: ID!, $r: String!) { joinChatroom(chatroomId: $c, role: $r) { role } }",
        const(c=room_id, r="builder"),
        "room",
        "role",
    ),
    "sendMessage": Field(SEND, send_vars, "room", "role"),
    "sendHandoff": Field(
        HANDOFF,
        inputs(chatroomId=room_id, senderRole="builder", targetRole="reviewer", content="done"),
        "room",
        "role",
    ),
    "claimTask": Field(
        CLAIM, inputs(chatroomId=room_id, taskId=_pending, role="builder"), "room", "role"
    ),
    "classifyTask": Field(
        CLASSIFY,
        inputs(chatroomId=room_id, role="builder", classification="QUESTION"),
        "room",
        "role",
    ),
    "addBacklogTask": Field(
        ADD_BACKLOG, inputs(chatroomId=room_id, content="sneaky"), "room", "manage"
    ),
    "updateTask": Field(
        "mutation($input: UpdateTaskInput!) { updateTask(input: $input) { id } }",
        inputs(chatroomId=room_id, taskId=_backlog, content="edited"),
        "room",
        "manage",
    ),
    "moveTaskToQueue": Field(
        "mutation($input: TaskRefInput!) { moveTaskToQueue(input: $input) { id } }",
        _task_ref(_backlog),
        "room",
        "manage",
    ),
    "completeTask": Field(
        "mutation($input: CompleteTaskInput!) { completeTask(input: $input) { id } }",
        inputs(chatroomId=room_id, taskId=_backlog, force=True),
        "room",
        "manage",
    ),
    "cancelTask": Field(
        "mutation($input: TaskRefInput!) { cancelTask(input: $input) { id } }",
        _task_ref(_backlog),
        "room",
        "manage",
    ),
    "releaseTask": Field(
        "mutation($input: TaskRefInput!) { releaseTask(input: $input) { id } }",
        _task_ref(_pending),
        "room",
        "manage",
    ),
    "requestCliLogin": Field(
        'mutation { requestCliLogin(deviceName: "matrix") { userCode } }', const(), "public"
    ),
    "approveCliLogin": Field(
        "mutation($code: String!) { approveCliLogin(userCode: $code) { status } }",
        fresh_code,
        "account",
        "manage",
    ),
    "denyCliLogin": Field(
        "mutation($code: String!) { denyCliLogin(userCode: $code) { status } }",
        fresh_code,
        "account",
        "manage",
    ),
    # Always someone else's session here (the owner's): revoking itself is tested elsewhere.
    "revokeSession": Field(REVOKE, const(id=lambda w: w.owner_session), "account", "manage"),
    "createAgentToken": Field(
        'mutation($c: ID!) { createAgentToken(chatroomId: $c, role: "builder") { token } }',
        const(c=room_id),
        "room",
        "manage",
    ),
    "signUp": Field(SIGN_UP, fresh_account, "public"),
    "signIn": Field(SIGN_IN, inputs(username="matrix-admin", password=PASSWORD), "public"),
    "upgradeGuest": Field(UPGRADE, lambda w, c: fresh_account(w, c), "account", "manage"),
    # Only the server's admin mints signup invites: everyone else is refused (FORBIDDEN).
    "createSignupInvite": Field(SIGNUP_INVITE, const(), "account", "manage"),
    # --- members (SPEC §12)
    "roomMembers": Field(
        "query($c: ID!) { roomMembers(chatroomId: $c) { user { id } role } }",
        const(c=room_id),
        "room",
    ),
    "createRoomInvite": Field(
        ROOM_INVITE, inputs(chatroomId=room_id, role="MEMBER"), "room", "manage"
    ),
    "acceptRoomInvite": Field(ACCEPT_INVITE, fresh_invite, "account", "manage"),
    # MEMBER to MEMBER: a change of nothing, should a refusal fail.
    "setMemberRole": Field(
        "mutation($c: ID!, $u: ID!) { setMemberRole(chatroomId: $c, userId: $u, role: MEMBER)"
        " { role } }",
        const(c=room_id, u=lambda w: w.member_id),
        "room",
        "manage",
    ),
    "removeMember": Field(
        "mutation($c: ID!, $u: ID!) { removeMember(chatroomId: $c, userId: $u) }",
        const(c=room_id, u=lambda w: w.member_id),
        "room",
        "manage",
    ),
    # --- machines and agent slots (SPEC §10): never with an agent token
    "machines": Field(MACHINES, const(), "account", "manage"),
    "machine": Field(MACHINE_Q, const(id=lambda w: w.machine), "account", "manage"),
    "registerMachine": Field(
        REGISTER,
        inputs(name="matrix", harnesses=[], daemonId=lambda w: new_daemon()),
        "account",
        "manage",
    ),
    "machineHeartbeat": Field(
        HEARTBEAT,
        inputs(machineId=lambda w: w.machine, daemonId=lambda w: new_daemon()),
        "account",
        "manage",
    ),
    "startAgents": Field(START, start_vars, "room", "manage"),
    "stopAgents": Field(STOP, slots_vars, "room", "manage"),
    "restartAgents": Field(RESTART, slots_vars, "room", "manage"),
    "claimAgentSlot": Field(CLAIM_SLOT, claim_vars, "account", "manage"),
    "reportAgentState": Field(REPORT, report_vars, "account", "manage"),
    "machineAgents": Field(MACHINE_AGENTS, const(m=lambda w: w.machine), "account", "manage"),
    # --- Subscription
    "roomEvents": Field(ROOM_EVENTS, const(c=room_id, after=0), "room"),
    "taskAvailable": Field(TASK_AVAILABLE, const(c=room_id, r="builder"), "room", "role"),
    "cliLoginStatus": Field(
        "subscription($id: ID!) { cliLoginStatus(requestId: $id) { status token } }",
        lambda w, c: _login_id(w),
        "public",
    ),
}


async def _login_id(w: World) -> dict[str, Any]:
    req = await ok(w.server, None, REQUEST_LOGIN, d="matrix")
    return {"id": req["requestId"]}


def expected(name: str, caller: str) -> str:
    """A code, "ok" (must succeed), or "allowed" (no access refusal; the domain may still say
    no, e.g. NOT_TASK_HOLDER)."""
    field = MATRIX[name]
    if field.kind == "public":
        return "ok"
    if caller in TOKEN_FAILURES:
        return "UNAUTHENTICATED"
    if caller in AGENTS:
        return _agent_expected(name, caller)
    # People: owner, member, viewer and the two strangers.
    if field.kind == "account":
        if name == "createSignupInvite":
            return "ok" if caller == "admin" else "FORBIDDEN"
        if name == "upgradeGuest":
            return "BAD_USER_INPUT" if caller == "admin" else "ok"  # the admin has an account
        if name == "acceptRoomInvite":
            return "allowed" if caller == "owner" else "ok"  # the owner is in its room already
        if name == "revokeSession":  # A's other session
            return "ok" if caller == "owner" else "NOT_FOUND"
        if name in OWN_MACHINE:
            return "ok" if caller == "owner" else "NOT_FOUND"
        return "ok"
    if caller in STRANGERS:
        return "NOT_FOUND"
    if name in READS:
        return "ok"
    if caller == "viewer" or (caller == "member" and name in OWNER_ONLY):
        return "FORBIDDEN"
    return "allowed" if name in DOMAIN_REFUSED else "ok"


def _agent_expected(name: str, caller: str) -> str:
    field = MATRIX[name]
    if field.agent == "manage":
        return "FORBIDDEN"
    if caller == "agent_other_room":
        return "NOT_FOUND" if field.kind == "room" else "ok"
    if caller == "agent_other_role":
        return "FORBIDDEN" if field.agent == "role" else "ok"
    # agent_own: reads and its own role's work are allowed; posting as the user is not.
    if name == "sendMessage":
        return "FORBIDDEN"
    return "ok" if field.agent == "read" else "allowed"


# --- running one call ----------------------------------------------------------------------------


async def run(
    w: World, root: str, name: str, caller: str, variables: dict[str, Any]
) -> list[Outcome]:
    """One outcome per transport (subscriptions: both websocket subprotocols)."""
    field = MATRIX[name]
    token = w.token(caller)
    if root != "Subscription":
        return [await call(w.server, token, field.doc, **variables)]
    # A refusal comes at once; work that is allowed may have nothing to deliver yet.
    return [
        await subscribe_first(w.server, token, field.doc, protocol=p, within=2.0, **variables)
        for p in PROTOCOLS
    ]


def without_ids(message: str, *ids: str) -> str:
    for value in ids:
        message = message.replace(value, "<id>")
    return message


def assert_outcome(out: Outcome, want: str, where: str) -> None:
    assert out.code != "INTERNAL", f"{where}: {out!r}"
    if want == "ok":
        assert out.ok, f"{where}: expected success, got {out!r}"
    elif want == "allowed":
        assert out.ok or out.code not in ACCESS_CODES, f"{where}: refused: {out!r}"
    else:
        assert out.code == want, f"{where}: expected {want}, got {out!r}"
        assert out.message, where


def assert_no_leak(out: Outcome, w: World, where: str) -> None:
    """What another user gets back never names A's room, user or session."""
    text = json.dumps(out.data)
    for secret in (w.room, w.room2, w.owner_id, w.owner_session, w.pending_task):
        assert secret not in text, f"{where}: leaks {secret} in {text[:300]}"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("root", "name"), SCHEMA_FIELDS, ids=[f"{r}.{n}" for r, n in SCHEMA_FIELDS]
)
async def test_access(world: World, root: str, name: str, caller: str) -> None:
    assert name in MATRIX, f"{root}.{name} has no access-matrix entry: add one to MATRIX"
    want = expected(name, caller)
    if caller in ACTORS and (MATRIX[name].kind == "room" or name == "revokeSession"):
        world = await world.fresh()
    variables = await MATRIX[name].vars(world, caller)
    where = f"{root}.{name} as {caller}"
    outcomes = await run(world, root, name, caller, variables)
    for out in outcomes:
        if root == "Subscription" and want == "allowed" and out.code == "TIMEOUT":
            continue  # allowed, and nothing to deliver yet
        assert_outcome(out, want, where)
        if caller in STRANGERS and out.ok:
            assert_no_leak(out, world, where)
        if caller == "agent_other_room" and out.ok and name == "chatrooms":
            assert [r["id"] for r in out.data["chatrooms"]] == [world.room2]  # type: ignore[index]

    if want == "NOT_FOUND":
        # The same call for a room that does not exist: the same answer, but for the id.
        missing = str(uuid.uuid4())
        swapped = json.loads(json.dumps(variables).replace(world.room, missing))
        if name == "revokeSession":
            swapped = {"id": missing}
        if name in OWN_MACHINE:
            swapped = json.loads(
                json.dumps(variables).replace(world.machine, missing).replace(world.slot, missing)
            )
        for real, ghost in zip(
            outcomes, await run(world, root, name, caller, swapped), strict=True
        ):
            assert ghost.code == real.code, f"{where}: {real!r} vs missing {ghost!r}"
            assert without_ids(ghost.message, missing) == without_ids(
                real.message, world.room, world.owner_session, world.machine, world.slot
            ), f"{where}: the message tells an existing room from a missing one"


def test_matrix_covers_every_field() -> None:
    """A field added to the schema needs an entry (and a decision: public or not)."""
    names = {name for _, name in SCHEMA_FIELDS}
    assert names == set(MATRIX), {
        "missing from MATRIX": sorted(names - set(MATRIX)),
        "not in the schema": sorted(set(MATRIX) - names),
    }
    assert {n for n, f in MATRIX.items() if f.kind == "public"} == PUBLIC


async def test_nothing_was_changed_by_refused_callers(world: World) -> None:
    """After the whole matrix (the module's other tests ran first), A's room is as A left it,
    but for what A's own builder token may do."""
    room = await ok(
        world.server,
        world.owner,
        "query($c: ID!) { chatroom(id: $c) { name status } }",
        c=world.room,
    )
    assert room == {"name": "A's room", "status": "ACTIVE"}
    tasks = {t["id"]: t for t in await ok(world.server, world.owner, TASKS, c=world.room)}
    assert tasks[world.backlog_task]["status"] == "BACKLOG"
    assert tasks[world.backlog_task]["content"] == "later"
    assert len(tasks) <= 3  # the two A made, and a handoff task of A's own builder at most
    sessions = await ok(world.server, world.owner, "query { sessions { id revokedAt } }")
    assert all(s["revokedAt"] is None for s in sessions if s["id"] == world.owner_session)
    people = await ok(
        world.server,
        world.owner,
        "query($c: ID!) { roomMembers(chatroomId: $c) { user { id } role } }",
        c=world.room,
    )
    assert [(p["user"]["id"], p["role"]) for p in people] == [
        (world.owner_id, "owner"),
        (world.member_id, "member"),
        (world.viewer_id, "viewer"),
    ]


# --- foreign ids inside one's own room -----------------------------------------------------------

TASK_FIELDS: dict[str, tuple[str, dict[str, Any]]] = {
    "claimTask": (CLAIM, {"role": "builder"}),
    "updateTask": (
        "mutation($input: UpdateTaskInput!) { updateTask(input: $input) { id } }",
        {"content": "x"},
    ),
    "moveTaskToQueue": (
        "mutation($input: TaskRefInput!) { moveTaskToQueue(input: $input) { id } }",
        {},
    ),
    "completeTask": (
        "mutation($input: CompleteTaskInput!) { completeTask(input: $input) { id } }",
        {"force": True},
    ),
    "cancelTask": ("mutation($input: TaskRefInput!) { cancelTask(input: $input) { id } }", {}),
    "releaseTask": ("mutation($input: TaskRefInput!) { releaseTask(input: $input) { id } }", {}),
}


@pytest.mark.parametrize("name", sorted(TASK_FIELDS))
async def test_a_task_of_another_room_looks_missing(world: World, name: str) -> None:
    """B, in B's own room, names A's task: answered exactly like a task that does not exist."""
    doc, extra = TASK_FIELDS[name]
    missing = str(uuid.uuid4())
    outcomes = [
        await call(
            world.server,
            world.other,
            doc,
            input={"chatroomId": world.room_b, "taskId": task, **extra},
        )
        for task in (world.pending_task, missing)
    ]
    real, ghost = outcomes
    assert real.code == ghost.code == "NOT_FOUND", outcomes
    assert without_ids(real.message, world.pending_task) == without_ids(ghost.message, missing)


# --- what an agent token CAN do -------------------------------------------------------------------


async def test_agent_tokens_do_their_roles_work(server: LiveServer) -> None:
    """builder and reviewer agent tokens run a whole chain: wait, claim, classify, read their
    room as their role, post a note, hand off; the owner only sends the request."""
    owner, _ = await new_user(server, "owner")
    room = (await new_room(server, owner))["id"]
    builder, builder_session = await agent_token(server, owner, room, "builder")
    reviewer, _ = await agent_token(server, owner, room, "reviewer")

    async with gql_ws(server, builder) as ws:
        stream = Stream(ws.subscribe(TASK_AVAILABLE, c=room, r="builder"))
        try:
            await _eventually_waiting(server, owner, room, "builder")
            sent = await ok(server, owner, SEND, input={"chatroomId": room, "content": "add X"})
            delivery = (await stream.next())["taskAvailable"]
        finally:
            await stream.close()
    assert delivery["kind"] == "TASK" and delivery["task"]["id"] == sent["task"]["id"]

    claimed = await ok(
        server,
        builder,
        CLAIM,
        input={"chatroomId": room, "taskId": sent["task"]["id"], "role": "builder"},
    )
    assert claimed["success"] is True and claimed["task"]["assignedTo"] == "builder"
    classified = await ok(
        server,
        builder,
        CLASSIFY,
        input={"chatroomId": room, "role": "builder", "classification": "NEW_FEATURE"},
    )
    assert classified["classification"] == "NEW_FEATURE"

    reads = {
        "chatroom": ("query($c: ID!) { chatroom(id: $c) { id } }", {"c": room}),
        "chatrooms": ("query { chatrooms { id } }", {}),
        "me": ("query { me { id } }", {}),
        "messages": (
            "query($c: ID!) { messages(chatroomId: $c) { nodes { content } } }",
            {"c": room},
        ),
        "tasks": (TASKS, {"c": room}),
        "taskCounts": (
            "query($c: ID!) { taskCounts(chatroomId: $c) { inProgress } }",
            {"c": room},
        ),
        "pendingTasks": (
            'query($c: ID!) { pendingTasks(chatroomId: $c, role: "builder") { id } }',
            {"c": room},
        ),
        "contextWindow": (
            'query($c: ID!) { contextWindow(chatroomId: $c, role: "builder")'
            " { originMessage { content } task { id } } }",
            {"c": room},
        ),
        "rolePrompt": (
            'query($c: ID!) { rolePrompt(chatroomId: $c, role: "builder")'
            " { role allowedTargets } }",
            {"c": room},
        ),
    }
    got = {name: await ok(server, builder, doc, **v) for name, (doc, v) in reads.items()}
    assert got["chatroom"]["id"] == room
    assert [r["id"] for r in got["chatrooms"]] == [room]
    assert [m["content"] for m in got["messages"]["nodes"]] == ["add X"]
    assert got["taskCounts"]["inProgress"] == 1
    assert got["contextWindow"]["originMessage"]["content"] == "add X"
    assert got["contextWindow"]["task"]["id"] == sent["task"]["id"]
    assert got["rolePrompt"]["role"] == "builder"
    assert "reviewer" in got["rolePrompt"]["allowedTargets"]

    note = await ok(
        server, builder, SEND, input={"chatroomId": room, "content": "FYI", "senderRole": "builder"}
    )
    assert note["task"] is None and note["message"]["senderRole"] == "builder"
    joined = await ok(
        server,
        builder,
        'mutation($c: ID!) { joinChatroom(chatroomId: $c, role: "builder") { role } }',
        c=room,
    )
    assert joined["role"] == "builder"
    handed = await ok(
        server,
        builder,
        HANDOFF,
        input={
            "chatroomId": room,
            "senderRole": "builder",
            "targetRole": "reviewer",
            "content": "please review",
        },
    )
    assert handed["newTask"]["assignedTo"] == "reviewer"

    # The reviewer's token takes it from there, to the user.
    first = await subscribe_first(server, reviewer, TASK_AVAILABLE, c=room, r="reviewer")
    assert first.ok and first.data is not None, first
    review_task = first.data["taskAvailable"]["task"]["id"]
    assert review_task == handed["newTask"]["id"]
    assert (
        await ok(
            server,
            reviewer,
            CLAIM,
            input={"chatroomId": room, "taskId": review_task, "role": "reviewer"},
        )
    )["success"]
    back = await ok(
        server,
        reviewer,
        HANDOFF,
        input={
            "chatroomId": room,
            "senderRole": "reviewer",
            "targetRole": "user",
            "content": "LGTM",
        },
    )
    assert back["newTask"] is None

    # The agent follows its room's log, and may log itself out.
    events = await subscribe_first(server, builder, ROOM_EVENTS, c=room, after=0)
    assert events.ok and events.data is not None and events.data["roomEvents"]["seq"] == 1, events
    revoked = await ok(server, builder, REVOKE)
    assert revoked["id"] == builder_session and revoked["revokedAt"]
    assert (await call(server, builder, "query { me { id } }")).code == "UNAUTHENTICATED"


async def _eventually_waiting(server: LiveServer, owner: str, room: str, role: str) -> None:
    doc = "query($c: ID!) { chatroom(id: $c) { participants { role status } } }"
    for _ in range(200):
        parts = (await ok(server, owner, doc, c=room))["participants"]
        if {p["role"]: p["status"] for p in parts}.get(role) == "WAITING":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{role} never became WAITING")
