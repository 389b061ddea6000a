"""Bad input through the real server (SPEC §5, §6): every mutation in schema.graphql, and the
queries that take ids, roles or cursors.

Each case checks three things: the documented code in ``errors[0].extensions.code``; that
NOTHING was written (every table of the server's database compared before and after); and that
no driver text, SQL or stack trace reaches the client.

Unexpected exceptions are tested in-process at the end: masked as INTERNAL, with a request id
in the message that is also in the server's log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.accounts import passwords
from tests.support import dbutil
from tests.support.gql_client import REFUSAL_CODES, gql_http, post_graphql
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
MAX_CONTENT = 100_000
MAX_NAME = 100
MAX_ROLES = 12

# Never in a client-facing message (checked case-insensitively).
DRIVER_TEXT = (
    "asyncpg",
    "sqlalchemy",
    "SELECT",
    "INSERT",
    "Traceback",
    "psycopg",
    "violates",
    "duplicate key",
)


def schema_root_fields(type_name: str) -> set[str]:
    """The field names of `type <type_name> { ... }` in the committed SDL."""
    sdl = SCHEMA_FILE.read_text()
    block = re.search(rf"^type {type_name} \{{\n(.*?)^\}}", sdl, re.M | re.S)
    assert block, f"no type {type_name} in {SCHEMA_FILE}"
    return set(re.findall(r"^  (\w+)[(:]", block.group(1), re.M))


# --- the documents ----------------------------------------------------------------------------

M = "mutation"
DOCS: dict[str, str] = {
    "createGuestSession": (
        "mutation($displayName: String) { createGuestSession(displayName: $displayName)"
        " { token user { id } } }"
    ),
    "createChatroom": (
        "mutation($input: CreateChatroomInput!) { createChatroom(input: $input) { id } }"
    ),
    "renameChatroom": (
        "mutation($chatroomId: ID!, $name: String!) {"
        " renameChatroom(chatroomId: $chatroomId, name: $name) { id name } }"
    ),
    "completeChatroom": (
        "mutation($chatroomId: ID!) { completeChatroom(chatroomId: $chatroomId) { id status } }"
    ),
    "interruptChatroom": (
        "mutation($chatroomId: ID!) { interruptChatroom(chatroomId: $chatroomId) { id } }"
    ),
    "joinChatroom": (
        "mutation($chatroomId: ID!, $role: String!) {"
        " joinChatroom(chatroomId: $chatroomId, role: $role) { role status } }"
    ),
    "sendMessage": (
        "mutation($input: SendMessageInput!) { sendMessage(input: $input)"
        " { message { id } task { id } } }"
    ),
    "sendHandoff": (
        "mutation($input: SendHandoffInput!) { sendHandoff(input: $input)"
        " { message { id } newTask { id } promotedTask { id } } }"
    ),
    "claimTask": (
        "mutation($input: ClaimTaskInput!) { claimTask(input: $input) { success task { id } } }"
    ),
    "classifyTask": ("mutation($input: ClassifyTaskInput!) { classifyTask(input: $input) { id } }"),
    "addBacklogTask": (
        "mutation($input: AddBacklogTaskInput!) { addBacklogTask(input: $input) { id } }"
    ),
    "updateTask": "mutation($input: UpdateTaskInput!) { updateTask(input: $input) { id } }",
    "moveTaskToQueue": (
        "mutation($input: TaskRefInput!) { moveTaskToQueue(input: $input) { id status } }"
    ),
    "completeTask": (
        "mutation($input: CompleteTaskInput!) { completeTask(input: $input) { id status } }"
    ),
    "cancelTask": "mutation($input: TaskRefInput!) { cancelTask(input: $input) { id status } }",
    "releaseTask": ("mutation($input: TaskRefInput!) { releaseTask(input: $input) { id status } }"),
    "createAgentToken": (
        "mutation($chatroomId: ID!, $role: String!) {"
        " createAgentToken(chatroomId: $chatroomId, role: $role) { token } }"
    ),
    "requestCliLogin": (
        "mutation($deviceName: String) { requestCliLogin(deviceName: $deviceName)"
        " { requestId userCode } }"
    ),
    "approveCliLogin": (
        "mutation($userCode: String!) { approveCliLogin(userCode: $userCode) { status } }"
    ),
    "denyCliLogin": (
        "mutation($userCode: String!) { denyCliLogin(userCode: $userCode) { status } }"
    ),
    "revokeSession": (
        "mutation($sessionId: ID) { revokeSession(sessionId: $sessionId) { id revokedAt } }"
    ),
    # queries that take ids, roles or cursors
    "chatroom": "query($id: ID!) { chatroom(id: $id) { id } }",
    "messages": (
        "query($chatroomId: ID!, $first: Int, $after: String, $last: Int, $before: String) {"
        " messages(chatroomId: $chatroomId, first: $first, after: $after, last: $last,"
        " before: $before) { nodes { id } } }"
    ),
    "tasks": (
        "query($chatroomId: ID!, $statuses: [TaskStatus!]) {"
        " tasks(chatroomId: $chatroomId, statuses: $statuses) { id } }"
    ),
    "taskCounts": "query($chatroomId: ID!) { taskCounts(chatroomId: $chatroomId) { pending } }",
    "pendingTasks": (
        "query($chatroomId: ID!, $role: String!) {"
        " pendingTasks(chatroomId: $chatroomId, role: $role) { id } }"
    ),
    "contextWindow": (
        "query($chatroomId: ID!, $role: String!) {"
        " contextWindow(chatroomId: $chatroomId, role: $role) { truncated } }"
    ),
    "rolePrompt": (
        "query($chatroomId: ID!, $role: String!) {"
        " rolePrompt(chatroomId: $chatroomId, role: $role) { role } }"
    ),
    "me": "query { me { id } }",
    "sessions": "query { sessions { id current } }",
    # accounts (SPEC §12)
    "signUp": "mutation($input: SignUpInput!) { signUp(input: $input) { token user { id } } }",
    "signIn": "mutation($input: SignInInput!) { signIn(input: $input) { token user { id } } }",
    "upgradeGuest": "mutation($input: UpgradeGuestInput!) { upgradeGuest(input: $input) { id } }",
    "createSignupInvite": "mutation { createSignupInvite { code } }",
    # room members (SPEC §12)
    "createRoomInvite": (
        "mutation($input: CreateRoomInviteInput!) { createRoomInvite(input: $input) { code } }"
    ),
    "acceptRoomInvite": "mutation($code: String!) { acceptRoomInvite(code: $code) { id } }",
    "setMemberRole": (
        "mutation($chatroomId: ID!, $userId: ID!, $role: MemberRole!) {"
        " setMemberRole(chatroomId: $chatroomId, userId: $userId, role: $role) { role } }"
    ),
    "removeMember": (
        "mutation($chatroomId: ID!, $userId: ID!) {"
        " removeMember(chatroomId: $chatroomId, userId: $userId) }"
    ),
    "roomMembers": "query($chatroomId: ID!) { roomMembers(chatroomId: $chatroomId) { role } }",
    # machines and agent slots (SPEC §10)
    "registerMachine": (
        "mutation($input: RegisterMachineInput!) { registerMachine(input: $input) { id } }"
    ),
    "machineHeartbeat": (
        "mutation($input: MachineHeartbeatInput!) { machineHeartbeat(input: $input) { id } }"
    ),
    "startAgents": "mutation($input: StartAgentsInput!) { startAgents(input: $input) { id } }",
    "stopAgents": "mutation($input: AgentsInput!) { stopAgents(input: $input) { id } }",
    "restartAgents": "mutation($input: AgentsInput!) { restartAgents(input: $input) { id } }",
    "claimAgentSlot": (
        "mutation($input: ClaimAgentSlotInput!) { claimAgentSlot(input: $input) { token } }"
    ),
    "reportAgentState": (
        "mutation($input: ReportAgentStateInput!) { reportAgentState(input: $input) { id } }"
    ),
}
# The world's one account (the server's first, so its admin): for taken-username cases.
TAKEN = "taken-name"
PASSWORD = passwords.BAD_INPUT


# --- the world the cases run against ---------------------------------------------------------


@dataclass
class World:
    """Built once per module through the API. Owner A's rooms:

    room      pair: T1 completed (builder -> reviewer), T4 in progress (reviewer),
              T2 queued, T3 backlog; keys msg-key-1, claim-key-1, handoff-key-1 used.
    room2     pair: builder holds T5, classified NEW_FEATURE (so builder -> user is refused);
              created with key room-key-1.
    done      completed room with backlog task T6.
    User B owns `foreign` with pending task T7.
    Device logins: `pending_code` waits for a decision, `denied_code` was denied,
    `expired_code` lapsed. `scoped_token` is an agent token of A (room, builder).
    C is a member of `room`; of A's invites to it, `used_invite` is used up (C's),
    `lapsed_invite` expired and `spare_invite` is valid (5 uses, none used). A registered
    `machine` (served by daemon `daemon`); no room has agent slots."""

    token_a: str
    token_b: str
    expired_token: str
    revoked_token: str
    scoped_token: str
    session_b: str
    pending_code: str
    denied_code: str
    expired_code: str
    room: str
    room2: str
    done: str
    foreign: str
    t1: str
    t2: str
    t3: str
    t4: str
    t6: str
    t7: str
    token_c: str
    c_id: str
    a_id: str
    used_invite: str
    lapsed_invite: str
    spare_invite: str
    machine: str
    daemon: str
    unknown: str = field(default_factory=lambda: str(uuid.uuid4()))


async def _gql(server: LiveServer, token: str | None, field_name: str, **variables: Any) -> Any:
    async with gql_http(server, token) as s:
        return (await s.execute(DOCS[field_name], **variables))[field_name]


async def _insert_session(
    db_url: str,
    user_id: str,
    token: str,
    *,
    expires_in: timedelta = timedelta(days=1),
    revoked: bool = False,
    scope: tuple[str, str] | None = None,
) -> None:
    """A session row written directly (states the API cannot produce on demand)."""
    await dbutil.execute(
        db_url,
        "INSERT INTO sessions (id, user_id, token_hash, created_at, last_used_at, expires_at,"
        " revoked_at, scope_chatroom_id, scope_role) VALUES ($1, $2, $3, now(), now(),"
        " now() + $4::interval, CASE WHEN $5 THEN now() END, $6, $7)",
        uuid.uuid4(),
        uuid.UUID(user_id),
        hashlib.sha256(token.encode()).hexdigest(),
        expires_in,
        revoked,
        uuid.UUID(scope[0]) if scope else None,
        scope[1] if scope else None,
    )


@pytest.fixture(scope="module")
async def world(live_server: LiveServer, module_db: PgDatabase) -> World:
    s = live_server
    await _gql(s, None, "signUp", input={"username": TAKEN, "password": PASSWORD})
    guest = await _gql(s, None, "createGuestSession", displayName="Owner A")
    a, a_id = guest["token"], guest["user"]["id"]
    b = (await _gql(s, None, "createGuestSession", displayName="Owner B"))["token"]

    async def sent(token: str, room_id: str, content: str, **extra: Any) -> str:
        inp = {"chatroomId": room_id, "content": content, **extra}
        return str((await _gql(s, token, "sendMessage", input=inp))["task"]["id"])

    async def claim(room_id: str, task_id: str, role: str, **extra: Any) -> None:
        inp = {"chatroomId": room_id, "taskId": task_id, "role": role, **extra}
        assert (await _gql(s, a, "claimTask", input=inp))["success"] is True

    async def classify(room_id: str, role: str, classification: str) -> None:
        inp = {"chatroomId": room_id, "role": role, "classification": classification}
        await _gql(s, a, "classifyTask", input=inp)

    room = (await _gql(s, a, "createChatroom", input={"name": "Main"}))["id"]
    t1 = await sent(a, room, "First request")
    await claim(room, t1, "builder", idempotencyKey="claim-key-1")
    await classify(room, "builder", "NEW_FEATURE")
    t2 = await sent(a, room, "Second request", idempotencyKey="msg-key-1")
    t3 = (await _gql(s, a, "addBacklogTask", input={"chatroomId": room, "content": "Later"}))["id"]
    handoff = {
        "chatroomId": room,
        "senderRole": "builder",
        "targetRole": "reviewer",
        "content": "Please review",
        "idempotencyKey": "handoff-key-1",
    }
    t4 = (await _gql(s, a, "sendHandoff", input=handoff))["newTask"]["id"]
    await claim(room, t4, "reviewer")

    room2_input = {"name": "Second", "idempotencyKey": "room-key-1"}
    room2 = (await _gql(s, a, "createChatroom", input=room2_input))["id"]
    t5 = await sent(a, room2, "A new feature")
    await claim(room2, t5, "builder")
    await classify(room2, "builder", "NEW_FEATURE")

    done = (await _gql(s, a, "createChatroom", input={"name": "Done"}))["id"]
    t6 = (await _gql(s, a, "addBacklogTask", input={"chatroomId": done, "content": "Never"}))["id"]
    await _gql(s, a, "completeChatroom", chatroomId=done)

    foreign = (await _gql(s, b, "createChatroom", input={"name": "B's room"}))["id"]
    t7 = await sent(b, foreign, "B's request")

    expired, revoked, scoped = "chr_" + "e" * 43, "chr_" + "r" * 43, "chr_" + "s" * 43
    await _insert_session(module_db.url, a_id, expired, expires_in=timedelta(days=-1))
    await _insert_session(module_db.url, a_id, revoked, revoked=True)
    await _insert_session(module_db.url, a_id, scoped, scope=(room, "builder"))
    [session_b] = await _gql(s, b, "sessions")

    async def room_invite(**extra: Any) -> str:
        inp = {"chatroomId": room, "role": "MEMBER", **extra}
        return str((await _gql(s, a, "createRoomInvite", input=inp))["code"])

    guest_c = await _gql(s, None, "createGuestSession", displayName="Member C")
    used_invite = await room_invite()
    assert (await _gql(s, guest_c["token"], "acceptRoomInvite", code=used_invite))["id"] == room
    lapsed_invite, spare_invite = await room_invite(), await room_invite(maxUses=5)
    await dbutil.execute(
        module_db.url,
        "UPDATE room_invites SET expires_at = now() - interval '1 minute' WHERE code_hash = $1",
        hashlib.sha256(lapsed_invite.encode()).hexdigest(),
    )

    async def login_code() -> str:
        return str((await _gql(s, None, "requestCliLogin", deviceName="laptop"))["userCode"])

    pending, denied, lapsed = await login_code(), await login_code(), await login_code()
    assert (await _gql(s, a, "denyCliLogin", userCode=denied))["status"] == "DENIED"
    await dbutil.execute(
        module_db.url,
        "UPDATE cli_login_requests SET expires_at = now() - interval '1 minute'"
        " WHERE user_code = $1",
        lapsed,
    )
    daemon = str(uuid.uuid4())
    machine = await _gql(
        s, a, "registerMachine", input={"name": "box", "harnesses": [], "daemonId": daemon}
    )
    return World(
        token_a=a,
        token_b=b,
        expired_token=expired,
        revoked_token=revoked,
        scoped_token=scoped,
        session_b=session_b["id"],
        pending_code=pending,
        denied_code=denied,
        expired_code=lapsed,
        room=room,
        room2=room2,
        done=done,
        foreign=foreign,
        t1=t1,
        t2=t2,
        t3=t3,
        t4=t4,
        t6=t6,
        t7=t7,
        token_c=guest_c["token"],
        c_id=guest_c["user"]["id"],
        a_id=a_id,
        used_invite=used_invite,
        lapsed_invite=lapsed_invite,
        spare_invite=spare_invite,
        machine=machine["id"],
        daemon=daemon,
    )


# --- the cases ------------------------------------------------------------------------------

Vars = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    id: str
    field: str
    variables: Vars
    code: str
    token: str = "a"  # a b c scoped none bare basic garbage huge expired revoked
    doc: str | None = None  # overrides DOCS[field] (e.g. an inline literal)
    ascii_json: bool = False  # send the body ASCII-escaped (for strings UTF-8 cannot encode)


def _input(w: World, room: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"input": {"chatroomId": w.room if room is None else room, **fields}}


def _start(w: World, **changed: Any) -> dict[str, Any]:
    """startAgents' fields but the room: the builder on A's machine (valid unless changed)."""
    fields = {"roles": ["builder"], "machineId": w.machine, "harness": "command"}
    return {**fields, "command": "true", "workdir": "/srv/project", **changed}


def _claim(w: World, **changed: Any) -> dict[str, Any]:
    return {"slotId": w.unknown, "daemonId": w.daemon, "generation": 1, **changed}


# Otherwise-valid variables for each operation on A's main room: the generated cases change
# exactly one thing (the token, the room id or the task id).
BASE: dict[str, Callable[[World, str], dict[str, Any]]] = {
    "renameChatroom": lambda w, r: {"chatroomId": r, "name": "Renamed"},
    "completeChatroom": lambda w, r: {"chatroomId": r},
    "interruptChatroom": lambda w, r: {"chatroomId": r},
    "joinChatroom": lambda w, r: {"chatroomId": r, "role": "builder"},
    "sendMessage": lambda w, r: _input(w, r, content="hello"),
    "sendHandoff": lambda w, r: _input(
        w, r, senderRole="reviewer", targetRole="builder", content="back to you"
    ),
    "claimTask": lambda w, r: _input(w, r, taskId=w.t4, role="reviewer"),
    "classifyTask": lambda w, r: _input(w, r, role="builder", classification="QUESTION"),
    "addBacklogTask": lambda w, r: _input(w, r, content="more"),
    "updateTask": lambda w, r: _input(w, r, taskId=w.t3, content="edited"),
    "moveTaskToQueue": lambda w, r: _input(w, r, taskId=w.t3),
    "completeTask": lambda w, r: _input(w, r, taskId=w.t3),
    "cancelTask": lambda w, r: _input(w, r, taskId=w.t3),
    "releaseTask": lambda w, r: _input(w, r, taskId=w.t4),
    "createAgentToken": lambda w, r: {"chatroomId": r, "role": "reviewer"},
    "chatroom": lambda w, r: {"id": r},
    "messages": lambda w, r: {"chatroomId": r},
    "tasks": lambda w, r: {"chatroomId": r},
    "taskCounts": lambda w, r: {"chatroomId": r},
    "pendingTasks": lambda w, r: {"chatroomId": r, "role": "builder"},
    "contextWindow": lambda w, r: {"chatroomId": r, "role": "builder"},
    "rolePrompt": lambda w, r: {"chatroomId": r, "role": "builder"},
    "createRoomInvite": lambda w, r: {"input": {"chatroomId": r, "role": "VIEWER"}},
    "setMemberRole": lambda w, r: {"chatroomId": r, "userId": w.c_id, "role": "VIEWER"},
    "removeMember": lambda w, r: {"chatroomId": r, "userId": w.c_id},
    "roomMembers": lambda w, r: {"chatroomId": r},
    "startAgents": lambda w, r: _input(w, r, **_start(w)),
    "stopAgents": lambda w, r: _input(w, r, roles=["builder"]),
    "restartAgents": lambda w, r: _input(w, r, roles=["builder"]),
}
TASK_OPS = {"claimTask", "updateTask", "moveTaskToQueue", "completeTask", "cancelTask"}
TASK_OPS |= {"releaseTask"}
NO_ROOM_AUTH_OPS: dict[str, Vars] = {
    "createChatroom": lambda w: {"input": {"name": "x"}},
    "approveCliLogin": lambda w: {"userCode": w.pending_code},
    "denyCliLogin": lambda w: {"userCode": w.pending_code},
    "revokeSession": lambda w: {"sessionId": w.session_b},
    "me": lambda w: {},
    "sessions": lambda w: {},
    "upgradeGuest": lambda w: {"input": {"username": "fresh-name", "password": PASSWORD}},
    "createSignupInvite": lambda w: {},
    "acceptRoomInvite": lambda w: {"code": w.spare_invite},
    "registerMachine": lambda w: {"input": {"name": "box", "harnesses": [], "daemonId": w.daemon}},
    "machineHeartbeat": lambda w: {"input": {"machineId": w.machine, "daemonId": w.daemon}},
    "claimAgentSlot": lambda w: {"input": _claim(w)},
    "reportAgentState": lambda w: {"input": {**_claim(w), "state": "WAITING"}},
}

MALFORMED_IDS = {
    "not-a-uuid": "not-a-uuid",
    "empty": "",
    "sql": "'; DROP TABLE chatrooms; --",
    "long": "f" * 5000,
    "almost-uuid": "0f8fad5b-d9cb-469f-a165-70867728950",
    "nul": "0f8fad5b-d9cb-469f-a165-70867728950e\x00",
}


def _with_room(op: str, room: Callable[[World], str]) -> Vars:
    return lambda w: BASE[op](w, room(w))


def _with_task(op: str, task: Callable[[World], str]) -> Vars:
    def make(w: World) -> dict[str, Any]:
        variables = BASE[op](w, w.room)
        variables["input"]["taskId"] = task(w)
        return variables

    return make


def generated_cases() -> list[Case]:
    cases: list[Case] = []
    for op in [*BASE, *NO_ROOM_AUTH_OPS]:
        make = NO_ROOM_AUTH_OPS.get(op) or _with_room(op, lambda w: w.room)
        for token in ("none", "bare", "basic", "garbage", "huge", "expired", "revoked"):
            cases.append(Case(f"{op}-token-{token}", op, make, "UNAUTHENTICATED", token=token))
    for op in BASE:
        cases.append(
            Case(f"{op}-unknown-room", op, _with_room(op, lambda w: w.unknown), "NOT_FOUND")
        )
        cases.append(
            Case(f"{op}-foreign-room", op, _with_room(op, lambda w: w.foreign), "NOT_FOUND")
        )
        for name, bad in MALFORMED_IDS.items():
            cases.append(
                Case(f"{op}-room-id-{name}", op, _with_room(op, lambda w, b=bad: b), "NOT_FOUND")
            )
        # B sees A's room exactly as A sees B's: not at all.
        cases.append(
            Case(f"{op}-as-other-user", op, _with_room(op, lambda w: w.room), "NOT_FOUND", "b")
        )
    for op in sorted(TASK_OPS):
        cases.append(
            Case(f"{op}-unknown-task", op, _with_task(op, lambda w: w.unknown), "NOT_FOUND")
        )
        cases.append(Case(f"{op}-foreign-task", op, _with_task(op, lambda w: w.t7), "NOT_FOUND"))
        # A task of another of my rooms is not a task of this room.
        cases.append(Case(f"{op}-other-room-task", op, _with_task(op, lambda w: w.t6), "NOT_FOUND"))
        for name, bad in MALFORMED_IDS.items():
            cases.append(
                Case(f"{op}-task-id-{name}", op, _with_task(op, lambda w, b=bad: b), "NOT_FOUND")
            )
    return cases


BAD = "BAD_USER_INPUT"
LONG_CONTENT = "x" * (MAX_CONTENT + 1)
LONG_NAME = "n" * (MAX_NAME + 1)


def roles(*names: str, **extra: Any) -> Vars:
    return lambda w: {"input": {"roles": list(names), **extra}}


def room_input(**fields: Any) -> Vars:
    return lambda w: {"input": fields}


SPECIFIC_CASES: list[Case] = [
    # createGuestSession (no token needed)
    Case("guest-blank-name", "createGuestSession", lambda w: {"displayName": "   "}, BAD, "none"),
    Case(
        "guest-long-name", "createGuestSession", lambda w: {"displayName": LONG_NAME}, BAD, "none"
    ),
    Case("guest-nul-name", "createGuestSession", lambda w: {"displayName": "a\x00b"}, BAD, "none"),
    Case("guest-name-not-string", "createGuestSession", lambda w: {"displayName": 5}, BAD, "none"),
    # createChatroom
    Case("room-unknown-team", "createChatroom", room_input(teamId="trio"), BAD),
    Case("room-duplicate-roles", "createChatroom", roles("builder", "Builder"), BAD),
    Case("room-entry-outside-roles", "createChatroom", roles("a", "b", entryPoint="c"), BAD),
    Case(
        "room-entry-outside-template",
        "createChatroom",
        room_input(teamId="pair", entryPoint="manager"),
        BAD,
    ),
    Case(
        "room-too-many-roles",
        "createChatroom",
        roles(*(f"role{i}" for i in range(MAX_ROLES + 1))),
        BAD,
    ),
    Case("room-no-roles", "createChatroom", roles(), BAD),
    Case("room-user-role", "createChatroom", roles("builder", "user"), BAD),
    Case("room-invalid-role", "createChatroom", roles("Bad Role!"), BAD),
    Case("room-role-too-long", "createChatroom", roles("r" * 33), BAD),
    Case("room-null-role", "createChatroom", lambda w: {"input": {"roles": ["a", None]}}, BAD),
    Case("room-name-too-long", "createChatroom", room_input(name=LONG_NAME), BAD),
    Case("room-name-blank", "createChatroom", room_input(name="  "), BAD),
    Case("room-name-nul", "createChatroom", room_input(name="a\x00b"), BAD),
    Case("room-key-too-long", "createChatroom", room_input(idempotencyKey="k" * 201), BAD),
    Case("room-key-empty", "createChatroom", room_input(idempotencyKey=""), BAD),
    Case(
        "room-key-reused",
        "createChatroom",
        room_input(name="Different", idempotencyKey="room-key-1"),
        "IDEMPOTENCY_KEY_REUSED",
    ),
    Case("room-unknown-field", "createChatroom", room_input(colour="red"), BAD),
    # renameChatroom
    Case("rename-blank", "renameChatroom", lambda w: {"chatroomId": w.room, "name": ""}, BAD),
    Case(
        "rename-too-long",
        "renameChatroom",
        lambda w: {"chatroomId": w.room, "name": LONG_NAME},
        BAD,
    ),
    Case("rename-nul", "renameChatroom", lambda w: {"chatroomId": w.room, "name": "a\x00b"}, BAD),
    Case("rename-null-name", "renameChatroom", lambda w: {"chatroomId": w.room, "name": None}, BAD),
    # interruptChatroom / completeChatroom: only the room's state can be wrong
    Case(
        "interrupt-completed-room",
        "interruptChatroom",
        lambda w: {"chatroomId": w.done},
        "CONFLICT",
    ),
    # joinChatroom
    Case(
        "join-outside-team", "joinChatroom", lambda w: {"chatroomId": w.room, "role": "tester"}, BAD
    ),
    Case("join-as-user", "joinChatroom", lambda w: {"chatroomId": w.room, "role": "user"}, BAD),
    Case("join-invalid-role", "joinChatroom", lambda w: {"chatroomId": w.room, "role": "No!"}, BAD),
    Case("join-empty-role", "joinChatroom", lambda w: {"chatroomId": w.room, "role": ""}, BAD),
    # sendMessage
    Case("send-empty", "sendMessage", lambda w: _input(w, content=""), BAD),
    Case("send-blank", "sendMessage", lambda w: _input(w, content=" \n\t "), BAD),
    Case("send-oversized", "sendMessage", lambda w: _input(w, content=LONG_CONTENT), BAD),
    Case("send-nul", "sendMessage", lambda w: _input(w, content="a\x00b"), BAD),
    Case(
        "send-lone-surrogate",
        "sendMessage",
        lambda w: _input(w, content="a\ud800b"),
        BAD,
        ascii_json=True,
    ),
    Case(
        "room-name-lone-surrogate",
        "createChatroom",
        room_input(name="\udfff"),
        BAD,
        ascii_json=True,
    ),
    Case(
        "send-sender-outside", "sendMessage", lambda w: _input(w, content="x", senderRole="qa"), BAD
    ),
    Case(
        "send-target-outside", "sendMessage", lambda w: _input(w, content="x", targetRole="qa"), BAD
    ),
    Case(
        "send-target-user", "sendMessage", lambda w: _input(w, content="x", targetRole="user"), BAD
    ),
    Case(
        "send-completed-room", "sendMessage", lambda w: _input(w, w.done, content="x"), "CONFLICT"
    ),
    Case(
        "send-key-too-long",
        "sendMessage",
        lambda w: _input(w, content="x", idempotencyKey="k" * 201),
        BAD,
    ),
    Case(
        "send-key-nul", "sendMessage", lambda w: _input(w, content="x", idempotencyKey="k\x00"), BAD
    ),
    Case(
        "send-key-reused",
        "sendMessage",
        lambda w: _input(w, content="Not the second request", idempotencyKey="msg-key-1"),
        "IDEMPOTENCY_KEY_REUSED",
    ),
    Case("send-missing-content", "sendMessage", lambda w: _input(w), BAD),
    # sendHandoff
    Case(
        "handoff-from-user",
        "sendHandoff",
        lambda w: _input(w, senderRole="user", targetRole="reviewer", content="x"),
        BAD,
    ),
    Case(
        "handoff-sender-outside",
        "sendHandoff",
        lambda w: _input(w, senderRole="tester", targetRole="user", content="x"),
        BAD,
    ),
    Case(
        "handoff-target-outside",
        "sendHandoff",
        lambda w: _input(w, senderRole="reviewer", targetRole="tester", content="x"),
        BAD,
    ),
    Case(
        "handoff-to-self",
        "sendHandoff",
        lambda w: _input(w, senderRole="reviewer", targetRole="reviewer", content="x"),
        BAD,
    ),
    Case(
        "handoff-invalid-role",
        "sendHandoff",
        lambda w: _input(w, senderRole="Reviewer!", targetRole="user", content="x"),
        BAD,
    ),
    Case(
        "handoff-empty",
        "sendHandoff",
        lambda w: _input(w, senderRole="reviewer", targetRole="user", content=""),
        BAD,
    ),
    Case(
        "handoff-oversized",
        "sendHandoff",
        lambda w: _input(w, senderRole="reviewer", targetRole="user", content=LONG_CONTENT),
        BAD,
    ),
    Case(
        "handoff-nul",
        "sendHandoff",
        lambda w: _input(w, senderRole="reviewer", targetRole="user", content="a\x00b"),
        BAD,
    ),
    Case(
        "handoff-not-holder",
        "sendHandoff",
        lambda w: _input(w, senderRole="builder", targetRole="reviewer", content="x"),
        "NOT_TASK_HOLDER",
    ),
    Case(
        "handoff-new-feature-to-user",
        "sendHandoff",
        lambda w: _input(w, w.room2, senderRole="builder", targetRole="user", content="x"),
        "HANDOFF_NOT_ALLOWED",
    ),
    Case(
        "handoff-key-reused",
        "sendHandoff",
        lambda w: _input(
            w,
            senderRole="builder",
            targetRole="reviewer",
            content="Something else",
            idempotencyKey="handoff-key-1",
        ),
        "IDEMPOTENCY_KEY_REUSED",
    ),
    Case(
        "handoff-completed-room",
        "sendHandoff",
        lambda w: _input(w, w.done, senderRole="builder", targetRole="user", content="x"),
        "NOT_TASK_HOLDER",
    ),
    # claimTask
    Case(
        "claim-queued",
        "claimTask",
        lambda w: _input(w, taskId=w.t2, role="builder"),
        "TASK_NOT_CLAIMABLE",
    ),
    Case(
        "claim-backlog",
        "claimTask",
        lambda w: _input(w, taskId=w.t3, role="builder"),
        "TASK_NOT_CLAIMABLE",
    ),
    Case("claim-outside-team", "claimTask", lambda w: _input(w, taskId=w.t4, role="qa"), BAD),
    Case("claim-as-user", "claimTask", lambda w: _input(w, taskId=w.t4, role="user"), BAD),
    Case(
        "claim-key-reused",
        "claimTask",
        lambda w: _input(w, taskId=w.t4, role="reviewer", idempotencyKey="claim-key-1"),
        "IDEMPOTENCY_KEY_REUSED",
    ),
    # classifyTask
    Case(
        "classify-bogus",
        "classifyTask",
        lambda w: _input(w, role="builder", classification="BOGUS"),
        BAD,
    ),
    Case(
        "classify-lower-case",
        "classifyTask",
        lambda w: _input(w, role="builder", classification="question"),
        BAD,
    ),
    Case(
        "classify-bogus-literal",
        "classifyTask",
        lambda w: {"c": w.room},
        BAD,
        doc=(
            'mutation($c: ID!) { classifyTask(input: {chatroomId: $c, role: "builder",'
            " classification: BOGUS}) { id } }"
        ),
    ),
    Case(
        "classify-not-holder",
        "classifyTask",
        lambda w: _input(w, role="builder", classification="QUESTION"),
        "NOT_TASK_HOLDER",
    ),
    Case(
        "classify-handoff-task",
        "classifyTask",
        lambda w: _input(w, role="reviewer", classification="QUESTION"),
        BAD,
    ),
    Case(
        "classify-twice",
        "classifyTask",
        lambda w: _input(w, w.room2, role="builder", classification="QUESTION"),
        "CONFLICT",
    ),
    Case(
        "classify-outside-team",
        "classifyTask",
        lambda w: _input(w, role="tester", classification="QUESTION"),
        BAD,
    ),
    # addBacklogTask
    Case("backlog-empty", "addBacklogTask", lambda w: _input(w, content=""), BAD),
    Case("backlog-oversized", "addBacklogTask", lambda w: _input(w, content=LONG_CONTENT), BAD),
    Case("backlog-nul", "addBacklogTask", lambda w: _input(w, content="\x00"), BAD),
    Case(
        "backlog-completed-room",
        "addBacklogTask",
        lambda w: _input(w, w.done, content="x"),
        "CONFLICT",
    ),
    # updateTask
    Case("update-empty", "updateTask", lambda w: _input(w, taskId=w.t3, content=""), BAD),
    Case(
        "update-oversized",
        "updateTask",
        lambda w: _input(w, taskId=w.t2, content=LONG_CONTENT),
        BAD,
    ),
    Case("update-nul", "updateTask", lambda w: _input(w, taskId=w.t3, content="a\x00"), BAD),
    Case(
        "update-completed", "updateTask", lambda w: _input(w, taskId=w.t1, content="x"), "CONFLICT"
    ),
    Case(
        "update-in-progress",
        "updateTask",
        lambda w: _input(w, taskId=w.t4, content="x"),
        "CONFLICT",
    ),
    # moveTaskToQueue
    Case("move-queued", "moveTaskToQueue", lambda w: _input(w, taskId=w.t2), "CONFLICT"),
    Case("move-completed", "moveTaskToQueue", lambda w: _input(w, taskId=w.t1), "CONFLICT"),
    Case(
        "move-in-completed-room",
        "moveTaskToQueue",
        lambda w: _input(w, w.done, taskId=w.t6),
        "CONFLICT",
    ),
    # completeTask
    Case("complete-active-unforced", "completeTask", lambda w: _input(w, taskId=w.t4), BAD),
    Case("complete-completed", "completeTask", lambda w: _input(w, taskId=w.t1), "CONFLICT"),
    Case(
        "complete-force-not-bool",
        "completeTask",
        lambda w: _input(w, taskId=w.t4, force="yes"),
        BAD,
    ),
    # cancelTask
    Case("cancel-completed", "cancelTask", lambda w: _input(w, taskId=w.t1), "CONFLICT"),
    # releaseTask
    Case("release-queued", "releaseTask", lambda w: _input(w, taskId=w.t2), "CONFLICT"),
    Case("release-backlog", "releaseTask", lambda w: _input(w, taskId=w.t3), "CONFLICT"),
    # signUp / signIn (no token needed): refused on shape alone, before any hashing or
    # counting (a wrong password is tested in tests/accounts: it counts, so it writes)
    *(
        Case(f"{op}-{name}", op, lambda w, v=v: {"input": v}, BAD, "none")
        for op in ("signUp", "signIn")
        for name, v in (
            ("short-username", {"username": "ab", "password": PASSWORD}),
            ("long-username", {"username": "u" * 33, "password": PASSWORD}),
            ("space-username", {"username": "a b c", "password": PASSWORD}),
            ("nul-username", {"username": "abc\x00", "password": PASSWORD}),
            ("empty-username", {"username": "", "password": PASSWORD}),
            ("short-password", {"username": "someone", "password": "short"}),
            ("long-password", {"username": "someone", "password": "p" * 1025}),
            ("nul-password", {"username": "someone", "password": "pass\x00word"}),
            ("null-password", {"username": "someone", "password": None}),
            ("unknown-field", {"username": "someone", "password": PASSWORD, "admin": True}),
        )
    ),
    Case(
        "signIn-lone-surrogate-password",
        "signIn",
        lambda w: {"input": {"username": "someone", "password": "pass\ud800word"}},
        BAD,
        "none",
        ascii_json=True,
    ),
    Case(
        "signUp-lone-surrogate-password",
        "signUp",
        lambda w: {"input": {"username": "someone", "password": "pass\ud800word"}},
        BAD,
        "none",
        ascii_json=True,
    ),
    Case(
        "signUp-taken-username",
        "signUp",
        lambda w: {"input": {"username": TAKEN.upper(), "password": PASSWORD}},
        BAD,
        "none",
    ),
    Case(
        "signUp-invite-code-not-string",
        "signUp",
        lambda w: {"input": {"username": "someone", "password": PASSWORD, "inviteCode": 7}},
        BAD,
        "none",
    ),
    # upgradeGuest: A is a guest
    *(
        Case(f"upgrade-{name}", "upgradeGuest", lambda w, v=v: {"input": v}, BAD)
        for name, v in (
            ("short-username", {"username": "ab", "password": PASSWORD}),
            ("short-password", {"username": "someone", "password": "short"}),
            ("long-password", {"username": "someone", "password": "p" * 1025}),
            ("taken-username", {"username": TAKEN, "password": PASSWORD}),
            ("missing-password", {"username": "someone"}),
        )
    ),
    Case(
        "upgrade-agent-token",
        "upgradeGuest",
        lambda w: {"input": {"username": "someone", "password": PASSWORD}},
        "FORBIDDEN",
        "scoped",
    ),
    # createSignupInvite: only the server's admin (A and B are guests)
    Case("signup-invite-not-admin", "createSignupInvite", lambda w: {}, "FORBIDDEN"),
    Case("signup-invite-agent-token", "createSignupInvite", lambda w: {}, "FORBIDDEN", "scoped"),
    # createRoomInvite
    *(
        Case(
            f"room-invite-{name}",
            "createRoomInvite",
            lambda w, v=v: {"input": {"chatroomId": w.room, "role": "MEMBER", **v}},
            BAD,
        )
        for name, v in (
            ("no-uses", {"maxUses": 0}),
            ("negative-uses", {"maxUses": -1}),
            ("too-many-uses", {"maxUses": 1001}),
            ("too-short", {"expiresInSeconds": 59}),
            ("too-long", {"expiresInSeconds": 30 * 86400 + 1}),
            ("negative-expiry", {"expiresInSeconds": -60}),
            ("owner-role", {"role": "OWNER"}),
            ("lower-case-role", {"role": "member"}),
            ("uses-not-int", {"maxUses": "many"}),
        )
    ),
    # managing members is the owner's: C is a member, not the owner
    Case(
        "room-invite-by-member",
        "createRoomInvite",
        lambda w: {"input": {"chatroomId": w.room, "role": "MEMBER"}},
        "FORBIDDEN",
        "c",
    ),
    Case(
        "remove-by-member",
        "removeMember",
        lambda w: {"chatroomId": w.room, "userId": w.c_id},
        "FORBIDDEN",
        "c",
    ),
    Case(
        "set-role-by-member",
        "setMemberRole",
        lambda w: {"chatroomId": w.room, "userId": w.c_id, "role": "MEMBER"},
        "FORBIDDEN",
        "c",
    ),
    # acceptRoomInvite: B is a stranger to A's room, C a member of it
    *(
        Case(f"accept-{name}", "acceptRoomInvite", lambda w, v=v: {"code": v(w)}, "NOT_FOUND", "b")
        for name, v in (
            ("unknown-code", lambda w: "chi_" + "x" * 32),
            ("empty-code", lambda w: ""),
            ("blank-code", lambda w: "   "),
            ("long-code", lambda w: "c" * 5000),
            ("nul-code", lambda w: "chi_\x00"),
            ("used-up", lambda w: w.used_invite),
            ("expired", lambda w: w.lapsed_invite),
        )
    ),
    Case(
        "accept-lone-surrogate-code",
        "acceptRoomInvite",
        lambda w: {"code": "chi_\ud800"},
        "NOT_FOUND",
        "b",
        ascii_json=True,
    ),
    Case("accept-own-room", "acceptRoomInvite", lambda w: {"code": w.spare_invite}, BAD),
    Case("accept-already-member", "acceptRoomInvite", lambda w: {"code": w.spare_invite}, BAD, "c"),
    Case(
        "accept-agent-token",
        "acceptRoomInvite",
        lambda w: {"code": w.spare_invite},
        "FORBIDDEN",
        "scoped",
    ),
    Case("accept-code-not-string", "acceptRoomInvite", lambda w: {"code": 5}, BAD, "b"),
    # setMemberRole / removeMember: the user must be a member of this room
    *(
        case
        for op, extra in (("setMemberRole", {"role": "VIEWER"}), ("removeMember", {}))
        for case in (
            Case(
                f"{op}-unknown-user",
                op,
                lambda w, e=extra: {"chatroomId": w.room, "userId": w.unknown, **e},
                "NOT_FOUND",
            ),
            Case(
                f"{op}-malformed-user",
                op,
                lambda w, e=extra: {"chatroomId": w.room, "userId": "nope", **e},
                "NOT_FOUND",
            ),
            Case(
                f"{op}-the-owner",
                op,
                lambda w, e=extra: {"chatroomId": w.room, "userId": w.a_id, **e},
                "NOT_FOUND",
            ),
            Case(
                f"{op}-member-of-another-room",
                op,
                lambda w, e=extra: {"chatroomId": w.room2, "userId": w.c_id, **e},
                "NOT_FOUND",
            ),
            Case(
                f"{op}-agent-token",
                op,
                lambda w, e=extra: {"chatroomId": w.room, "userId": w.c_id, **e},
                "FORBIDDEN",
                "scoped",
            ),
        )
    ),
    Case(
        "set-role-owner",
        "setMemberRole",
        lambda w: {"chatroomId": w.room, "userId": w.c_id, "role": "OWNER"},
        BAD,
    ),
    # requestCliLogin (no token needed)
    Case("login-blank-device", "requestCliLogin", lambda w: {"deviceName": " "}, BAD, "none"),
    Case("login-long-device", "requestCliLogin", lambda w: {"deviceName": LONG_NAME}, BAD, "none"),
    Case("login-nul-device", "requestCliLogin", lambda w: {"deviceName": "a\x00"}, BAD, "none"),
    # approveCliLogin / denyCliLogin
    *(
        case
        for op in ("approveCliLogin", "denyCliLogin")
        for case in (
            Case(f"{op}-unknown-code", op, lambda w: {"userCode": "ZZZZ-ZZZZ"}, "NOT_FOUND"),
            Case(f"{op}-empty-code", op, lambda w: {"userCode": ""}, "NOT_FOUND"),
            Case(f"{op}-long-code", op, lambda w: {"userCode": "Q" * 5000}, "NOT_FOUND"),
            Case(f"{op}-nul-code", op, lambda w: {"userCode": "BCDF\x00GHJK"}, "NOT_FOUND"),
            Case(f"{op}-nul-code-short", op, lambda w: {"userCode": "\x00"}, "NOT_FOUND"),
            Case(f"{op}-decided", op, lambda w: {"userCode": w.denied_code}, "CONFLICT"),
            Case(f"{op}-expired", op, lambda w: {"userCode": w.expired_code}, "CONFLICT"),
            Case(
                f"{op}-agent-token",
                op,
                lambda w: {"userCode": w.pending_code},
                "FORBIDDEN",
                "scoped",
            ),
        )
    ),
    # createAgentToken
    Case(
        "agent-token-outside-team",
        "createAgentToken",
        lambda w: {"chatroomId": w.room, "role": "qa"},
        BAD,
    ),
    Case(
        "agent-token-for-user",
        "createAgentToken",
        lambda w: {"chatroomId": w.room, "role": "user"},
        BAD,
    ),
    # an agent token (builder in the main room) acts only as builder, only there
    *(
        Case(f"agent-{op}", op, variables, "FORBIDDEN", "scoped")
        for op, variables in (
            ("createAgentToken", lambda w: {"chatroomId": w.room, "role": "builder"}),
            ("createChatroom", lambda w: {"input": {"name": "mine"}}),
            ("renameChatroom", lambda w: {"chatroomId": w.room, "name": "mine"}),
            ("completeChatroom", lambda w: {"chatroomId": w.room}),
            ("interruptChatroom", lambda w: {"chatroomId": w.room}),
            ("joinChatroom", lambda w: {"chatroomId": w.room, "role": "reviewer"}),
            ("sendMessage", lambda w: _input(w, content="as the user")),
            (
                "sendHandoff",
                lambda w: _input(w, senderRole="reviewer", targetRole="user", content="x"),
            ),
            ("claimTask", lambda w: _input(w, taskId=w.t4, role="reviewer")),
            ("classifyTask", lambda w: _input(w, role="reviewer", classification="QUESTION")),
            ("addBacklogTask", lambda w: _input(w, content="x")),
            ("updateTask", lambda w: _input(w, taskId=w.t3, content="x")),
            ("moveTaskToQueue", lambda w: _input(w, taskId=w.t3)),
            ("completeTask", lambda w: _input(w, taskId=w.t3)),
            ("cancelTask", lambda w: _input(w, taskId=w.t3)),
            ("releaseTask", lambda w: _input(w, taskId=w.t4)),
        )
    ),
    *(
        Case(f"agent-other-room-{op}", op, _with_room(op, lambda w: w.room2), "NOT_FOUND", "scoped")
        for op in ("joinChatroom", "claimTask", "sendHandoff", "pendingTasks", "chatroom")
    ),
    # revokeSession (never without an id here: that would log A out)
    Case("revoke-unknown", "revokeSession", lambda w: {"sessionId": w.unknown}, "NOT_FOUND"),
    Case("revoke-foreign", "revokeSession", lambda w: {"sessionId": w.session_b}, "NOT_FOUND"),
    Case("revoke-malformed", "revokeSession", lambda w: {"sessionId": "nope"}, "NOT_FOUND"),
    Case(
        "revoke-other-with-agent-token",
        "revokeSession",
        lambda w: {"sessionId": w.session_b},
        "FORBIDDEN",
        "scoped",
    ),
    # queries: cursors, page sizes, roles, enums
    Case(
        "messages-garbage-cursor", "messages", lambda w: {"chatroomId": w.room, "after": "!!"}, BAD
    ),
    Case(
        "messages-not-our-cursor",
        "messages",
        lambda w: {"chatroomId": w.room, "after": base64.urlsafe_b64encode(b"seq:x").decode()},
        BAD,
    ),
    Case(
        "messages-other-kind-cursor",
        "messages",
        lambda w: {"chatroomId": w.room, "before": base64.urlsafe_b64encode(b"id:3").decode()},
        BAD,
    ),
    Case("messages-first-not-int", "messages", lambda w: {"chatroomId": w.room, "first": "x"}, BAD),
    Case(
        "messages-first-too-big", "messages", lambda w: {"chatroomId": w.room, "first": 2**31}, BAD
    ),
    Case("tasks-bogus-status", "tasks", lambda w: {"chatroomId": w.room, "statuses": ["X"]}, BAD),
    Case(
        "pending-outside-team", "pendingTasks", lambda w: {"chatroomId": w.room, "role": "qa"}, BAD
    ),
    Case("context-as-user", "contextWindow", lambda w: {"chatroomId": w.room, "role": "user"}, BAD),
    Case("prompt-invalid-role", "rolePrompt", lambda w: {"chatroomId": w.room, "role": "??"}, BAD),
    # machines and agent slots: a bad field, an unknown or malformed id, an agent token
    Case(
        "start-unknown-harness", "startAgents", lambda w: _input(w, **_start(w, harness="vim")), BAD
    ),
    Case(
        "start-relative-workdir",
        "startAgents",
        lambda w: _input(w, **_start(w, workdir="src")),
        BAD,
    ),
    Case("start-empty-workdir", "startAgents", lambda w: _input(w, **_start(w, workdir="")), BAD),
    Case(
        "start-command-missing", "startAgents", lambda w: _input(w, **_start(w, command=None)), BAD
    ),
    Case("start-unknown-role", "startAgents", lambda w: _input(w, **_start(w, roles=["qa"])), BAD),
    Case(
        "start-unknown-machine",
        "startAgents",
        lambda w: _input(w, **_start(w, machineId=w.unknown)),
        "NOT_FOUND",
    ),
    Case(
        "start-malformed-machine",
        "startAgents",
        lambda w: _input(w, **_start(w, machineId="nope")),
        "NOT_FOUND",
    ),
    Case(
        "start-agent-token", "startAgents", lambda w: _input(w, **_start(w)), "FORBIDDEN", "scoped"
    ),
    Case("stop-role-without-slot", "stopAgents", lambda w: _input(w, roles=["builder"]), BAD),
    Case("restart-role-without-slot", "restartAgents", lambda w: _input(w, roles=["builder"]), BAD),
    Case("stop-unknown-role", "stopAgents", lambda w: _input(w, roles=["qa"]), BAD),
    Case(
        "register-empty-name",
        "registerMachine",
        lambda w: {"input": {"name": "", "harnesses": [], "daemonId": w.daemon}},
        BAD,
    ),
    Case(
        "register-long-name",
        "registerMachine",
        lambda w: {"input": {"name": LONG_NAME, "harnesses": [], "daemonId": w.daemon}},
        BAD,
    ),
    Case(
        "register-unknown-machine",
        "registerMachine",
        lambda w: {
            "input": {"machineId": w.unknown, "name": "box", "harnesses": [], "daemonId": w.daemon}
        },
        "NOT_FOUND",
    ),
    Case(
        "register-agent-token",
        "registerMachine",
        lambda w: {"input": {"name": "box", "harnesses": [], "daemonId": w.daemon}},
        "FORBIDDEN",
        "scoped",
    ),
    Case(
        "heartbeat-unknown-machine",
        "machineHeartbeat",
        lambda w: {"input": {"machineId": w.unknown, "daemonId": w.daemon}},
        "NOT_FOUND",
    ),
    Case(
        "heartbeat-other-users-machine",
        "machineHeartbeat",
        lambda w: {"input": {"machineId": w.machine, "daemonId": w.daemon}},
        "NOT_FOUND",
        "b",
    ),
    Case("claim-unknown-slot", "claimAgentSlot", lambda w: {"input": _claim(w)}, "NOT_FOUND"),
    Case(
        "claim-malformed-slot",
        "claimAgentSlot",
        lambda w: {"input": _claim(w, slotId="nope")},
        "NOT_FOUND",
    ),
    Case(
        "report-unknown-slot",
        "reportAgentState",
        lambda w: {"input": {**_claim(w), "state": "WAITING"}},
        "NOT_FOUND",
    ),
    Case(
        "report-unknown-state",
        "reportAgentState",
        lambda w: {"input": {**_claim(w), "state": "DANCING"}},
        BAD,
    ),
    # documents that are not valid GraphQL
    Case("syntax-error", "sendMessage", lambda w: {}, BAD, doc="mutation { sendMessage("),
    Case(
        "unknown-mutation",
        "sendMessage",
        lambda w: {},
        BAD,
        doc="mutation { dropEverything { id } }",
    ),
]

CASES = generated_cases() + SPECIFIC_CASES


def _tokens(w: World) -> dict[str, str | None]:
    return {
        "a": w.token_a,
        "b": w.token_b,
        "c": w.token_c,
        "scoped": w.scoped_token,
        "none": None,
        "garbage": "garbage",
        "huge": "chr_" + "x" * 4000,
        "expired": w.expired_token,
        "revoked": w.revoked_token,
    }


def assert_clean_error(response: dict[str, Any], field_name: str) -> tuple[str, str, dict]:
    """The first error's (code, message, extensions), after the checks every refusal passes."""
    errors = response.get("errors")
    assert errors, f"expected an error, got {response}"
    data = response.get("data")
    assert not data or data.get(field_name) is None, f"a result came back: {response}"
    first = errors[0]
    extensions = first.get("extensions") or {}
    code = extensions.get("code")
    message = str(first.get("message", ""))
    for error in errors:
        text = repr(error).lower()
        for leak in DRIVER_TEXT:
            assert leak.lower() not in text, f"{leak!r} leaked to the client: {error}"
        assert "stacktrace" not in text and "exception" not in (error.get("extensions") or {})
        assert PASSWORD.lower() not in text, f"a password echoed: {error}"
    return code, message, extensions


# Authorization headers post_graphql cannot send (it always writes "Bearer <token>").
RAW_AUTHORIZATION = {"bare": "Bearer", "basic": "Basic dXNlcjpwYXNzd29yZA=="}


async def _post_raw(
    server: LiveServer, doc: str, variables: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """POST with the JSON escaped to ASCII (so lone surrogates travel as \\ud800 escapes)."""
    body = json.dumps({"query": doc, "variables": variables}, ensure_ascii=True)
    headers = {**headers, "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        response = await client.post(server.http_url, content=body.encode(), headers=headers)
    data = response.json()
    assert isinstance(data, dict), data
    return data


async def _send(server: LiveServer, w: World, case: Case) -> dict[str, Any]:
    doc = case.doc or DOCS[case.field]
    variables = case.variables(w)
    if case.token in RAW_AUTHORIZATION:
        return await _post_raw(
            server, doc, variables, {"Authorization": RAW_AUTHORIZATION[case.token]}
        )
    token = _tokens(w)[case.token]
    if case.ascii_json:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await _post_raw(server, doc, variables, headers)
    return await post_graphql(server, doc, variables, token=token)


# --- the tests ------------------------------------------------------------------------------


def test_every_mutation_has_bad_input_cases() -> None:
    mutations = schema_root_fields("Mutation")
    assert "sendHandoff" in mutations and "claimTask" in mutations  # the parser works
    covered = {c.field for c in CASES if c.doc is None}
    missing = sorted(mutations - covered)
    assert not missing, f"mutations without bad-input cases here: {missing}"
    # Every mutation a token is needed for is tried without one.
    unauthenticated = {c.field for c in CASES if c.code == "UNAUTHENTICATED"}
    public = ["createGuestSession", "requestCliLogin", "signIn", "signUp"]
    assert sorted(mutations - unauthenticated) == public
    stale = sorted(set(DOCS) - mutations - schema_root_fields("Query"))
    assert not stale, f"documents for fields the schema no longer has: {stale}"


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_bad_input_is_refused_without_a_write(
    case: Case, world: World, live_server: LiveServer, module_db: PgDatabase
) -> None:
    assert case.code in REFUSAL_CODES
    before = await dbutil.snapshot_tables(module_db.url)
    response = await _send(live_server, world, case)
    code, message, _ = assert_clean_error(response, case.field)
    assert code == case.code, f"{case.id}: expected {case.code}, got {code}: {message}"
    assert message.strip(), "a refusal says what to do next"
    after = await dbutil.snapshot_tables(module_db.url)
    changed = sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
    assert not changed, f"{case.id} wrote to {changed}"


def _masked(message: str, *ids: str) -> str:
    for value in ids:
        message = message.replace(value, "<id>")
    return message


ROOM_OPS = sorted(BASE)


@pytest.mark.parametrize("op", ROOM_OPS)
async def test_foreign_room_answers_exactly_like_unknown_room(
    op: str, world: World, live_server: LiveServer
) -> None:
    answers = []
    for room in (world.foreign, world.unknown):
        response = await post_graphql(
            live_server, DOCS[op], BASE[op](world, room), token=world.token_a
        )
        code, message, extensions = assert_clean_error(response, op)
        answers.append((code, _masked(message, room), extensions))
    assert answers[0] == answers[1]
    assert answers[0][0] == "NOT_FOUND"
    # The owner's own view of the id is not "not found": the room exists for them.
    owner = await post_graphql(live_server, DOCS["chatroom"], {"id": world.foreign}, world.token_b)
    assert owner.get("data", {}).get("chatroom", {}).get("id") == world.foreign, owner


@pytest.mark.parametrize("op", sorted(TASK_OPS))
async def test_foreign_task_answers_exactly_like_unknown_task(
    op: str, world: World, live_server: LiveServer
) -> None:
    answers = []
    for task in (world.t7, world.unknown):
        response = await post_graphql(
            live_server, DOCS[op], _with_task(op, lambda w, t=task: t)(world), token=world.token_a
        )
        code, message, extensions = assert_clean_error(response, op)
        answers.append((code, _masked(message, task), extensions))
    assert answers[0] == answers[1]
    assert answers[0][0] == "NOT_FOUND"


async def test_content_at_the_limit_is_accepted(
    world: World, live_server: LiveServer, module_db: PgDatabase
) -> None:
    """The limit is inclusive: the oversized cases fail on size, not on something else."""
    doc = DOCS["addBacklogTask"]
    body = "y" * MAX_CONTENT
    response = await post_graphql(live_server, doc, _input(world, content=body), world.token_a)
    assert "errors" not in response, response
    task_id = response["data"]["addBacklogTask"]["id"]
    stored = await dbutil.fetchval(
        module_db.url, "SELECT length(content) FROM tasks WHERE id = $1", uuid.UUID(task_id)
    )
    assert stored == MAX_CONTENT
    # Leave the world as it was for the other cases.
    cancel = await post_graphql(
        live_server, DOCS["cancelTask"], _input(world, taskId=task_id), world.token_a
    )
    assert "errors" not in cancel, cancel


# --- unexpected exceptions: INTERNAL, with a request id in the message and in the log ---------


async def test_unexpected_exception_is_masked_and_logged(
    db: PgDatabase, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from chatroom.resolvers import rooms
    from chatroom.schema.app import create_app

    secret = "secret driver text: asyncpg SELECT * FROM chatrooms violates duplicate key"
    real_create = rooms.create_chatroom

    async def exploding_create(tx: Any, caller: Any, **kwargs: Any) -> Any:
        await real_create(tx, caller, **kwargs)  # a write happens, then the unexpected
        raise RuntimeError(secret)

    app = create_app(db.url, apply_migrations=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:

            async def gql(doc: str, variables: dict[str, Any], token: str | None = None) -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                body = {"query": doc, "variables": variables}
                return (await http.post("/graphql", json=body, headers=headers)).json()

            signed_up = await gql(DOCS["createGuestSession"], {"displayName": "x"})
            token = signed_up["data"]["createGuestSession"]["token"]
            before = await dbutil.snapshot_tables(db.url)
            monkeypatch.setattr(rooms, "create_chatroom", exploding_create)
            with caplog.at_level(logging.ERROR, logger="chatroom"):
                response = await gql(DOCS["createChatroom"], {"input": {"name": "boom"}}, token)

    code, message, extensions = assert_clean_error(response, "createChatroom")
    assert code == "INTERNAL"
    assert "secret" not in repr(response) and "RuntimeError" not in repr(response)
    request_id = extensions.get("requestId")
    assert request_id and request_id in message, response
    assert await dbutil.snapshot_tables(db.url) == before, "the failed mutation left a write"

    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged, f"request {request_id} not in the log: {caplog.text}"
    assert any(
        r.exc_info and isinstance(r.exc_info[1], RuntimeError) and secret in str(r.exc_info[1])
        for r in logged
    ), "the log keeps the real exception for the operator"
