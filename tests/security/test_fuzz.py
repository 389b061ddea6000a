"""Property-based fuzzing through the real server (SPEC §6: "Bad input never leaves a partial
write behind"; unexpected exceptions are INTERNAL and must never happen).

Hypothesis generates batches of calls to EVERY mutation (and, in a second test, the queries
that take ids, cursors, ints and enums), with strings of every kind (unicode, control
characters, lone surrogates, SQL-ish text, lengths just around the limits), random and valid
ids of the test's own rooms and tasks, valid and invalid roles and enum values, booleans and
wrong types. Each batch runs concurrently against one server (rate limit off); after it:

  * no response is INTERNAL, every error has a code from the closed list and no driver text;
  * the database invariants hold (checked with SQL, bypassing the app): one pending or
    in-progress task per room at most; no orphan rows; tasks' source and origin messages
    exist in the task's room; messages.seq and room_events.seq are 1..N per room and end at
    the room's counters; queued tasks have distinct positions; participants are the team;
    tasks are assigned to team roles only; a completed room holds no active or queued work."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.security.common import (
    CODES,
    LOG_WATCH,
    agent_token,
    new_room,
    new_user,
    ok,
    remember,
)
from tests.support import dbutil
from tests.support.gql_client import post_graphql
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

BATCH = 8  # calls per example, sent concurrently
# Examples per property (x BATCH inputs); SECURITY_FUZZ_SCALE=0.1 for a quick local run.
SCALE = float(os.environ.get("SECURITY_FUZZ_SCALE", "1"))
MUTATION_EXAMPLES = max(1, int(700 * SCALE))  # x BATCH = 5,600 inputs
QUERY_EXAMPLES = max(1, int(150 * SCALE))
MIN_INPUTS = int(5_000 * SCALE)
BODY_LIMIT = 1 << 20
DRIVER_TEXT = ("select ", "insert ", "asyncpg", "sqlalchemy", "traceback", "psycopg", "violates")
SETTINGS = settings(
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No shrinking: against a live server it takes minutes, and the failing batch is printed
    # as generated (with the server's answer in the assertion message).
    phases=[Phase.explicit, Phase.generate],
)

# --- the server and the world it is fuzzed in --------------------------------------------------


@pytest.fixture(scope="module")
async def fuzz_server(
    module_db: PgDatabase, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    server = LiveServer(
        module_db.url,
        tmp_path_factory.mktemp("fuzz-server") / "server.log",
        {"CHATROOM_MUTATIONS_PER_SECOND": "0"},
    )
    await server.start()
    LOG_WATCH.track(server)
    yield server
    await server.stop()


@dataclass
class World:
    server: LiveServer
    db_url: str
    owner: str
    callers: dict[str, str | None]
    rooms: list[dict[str, Any]]  # {"id", "roles"}
    foreign_room: str
    foreign_task: str
    sessions: list[str] = field(default_factory=list)  # disposable (fuzz-minted) sessions
    codes: list[str] = field(default_factory=list)  # device-login user codes
    tasks: dict[str, list[str]] = field(default_factory=dict)  # room id -> task ids
    all_tasks: list[str] = field(default_factory=list)
    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    succeeded: dict[str, int] = field(default_factory=dict)  # per field name

    active: dict[str, tuple[str, str]] = field(default_factory=dict)  # room -> (task, role)

    async def refresh(self) -> None:
        """The current tasks, and each room's active task with the role that may act on it."""
        rows = await dbutil.fetch(
            self.db_url,
            "SELECT t.id::text, t.chatroom_id::text AS room, t.status,"
            " coalesce(t.assigned_to, c.entry_point) AS role"
            " FROM tasks t JOIN chatrooms c ON c.id = t.chatroom_id ORDER BY t.created_at, t.id",
        )
        self.tasks, self.active = {}, {}
        for r in rows:
            self.tasks.setdefault(r["room"], []).append(r["id"])
            if r["status"] in ("pending", "in_progress"):
                self.active[r["room"]] = (r["id"], r["role"])
        self.all_tasks = [r["id"] for r in rows]


@pytest.fixture(scope="module")
async def world(fuzz_server: LiveServer, module_db: PgDatabase) -> World:
    server = fuzz_server
    owner, _ = await new_user(server, "fuzz owner")
    rooms = []
    for fields in (
        {"teamId": "pair"},
        {"teamId": "squad"},
        {"roles": ["alpha", "beta-2", "gamma"], "entryPoint": "beta-2"},
    ):
        room = await new_room(server, owner, **fields)
        rooms.append({"id": room["id"], "roles": room["teamRoles"]})
    other, _ = await new_user(server, "fuzz other")
    foreign = await new_room(server, other)
    sent = await ok(
        server,
        other,
        'mutation($c: ID!) { sendMessage(input: {chatroomId: $c, content: "x"}) { task { id } } }',
        c=foreign["id"],
    )
    callers: dict[str, str | None] = {
        "owner": owner,
        "builder": (await agent_token(server, owner, rooms[0]["id"], "builder"))[0],
        "reviewer": (await agent_token(server, owner, rooms[0]["id"], "reviewer"))[0],
        "manager": (await agent_token(server, owner, rooms[1]["id"], "manager"))[0],
        "other": other,
        "none": None,
        "garbage": "chr_" + "A" * 43,
    }
    return World(
        server=server,
        db_url=module_db.url,
        owner=owner,
        callers=callers,
        rooms=rooms,
        foreign_room=foreign["id"],
        foreign_task=sent["task"]["id"],
    )


# --- abstract values, resolved against the world when a batch is sent ---------------------------


@dataclass(frozen=True)
class Ref:
    """A reference into the world: which kind, and an index (modulo the pool's size)."""

    # room | task | active_task | any_task | role | active_role | session | code
    # | foreign_room | foreign_task
    kind: str
    index: int = 0


def resolve(value: Any, w: World, room: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: resolve(v, w, room) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, w, room) for v in value]
    if not isinstance(value, Ref):
        return value
    i = value.index
    match value.kind:
        case "room":
            return room["id"]
        case "task":
            pool = w.tasks.get(room["id"]) or w.all_tasks
            return pool[i % len(pool)] if pool else str(uuid.uuid4())
        case "active_task":
            if room["id"] in w.active:
                return w.active[room["id"]][0]
            return resolve(Ref("task", i), w, room)
        case "active_role":
            if room["id"] in w.active:
                return w.active[room["id"]][1]
            return resolve(Ref("role", i), w, room)
        case "any_task":
            return w.all_tasks[i % len(w.all_tasks)] if w.all_tasks else str(uuid.uuid4())
        case "role":
            roles = [*room["roles"], "user"]
            return roles[i % len(roles)]
        case "session":
            return w.sessions[i % len(w.sessions)] if w.sessions else str(uuid.uuid4())
        case "code":
            return w.codes[i % len(w.codes)] if w.codes else "BCDF-GHJK"
        case "foreign_room":
            return w.foreign_room
        case "foreign_task":
            return w.foreign_task
    raise AssertionError(value)


# --- strategies ----------------------------------------------------------------------------------

SQLISH = [
    "'; DROP TABLE tasks; --",
    '" OR 1=1 --',
    "' OR '1'='1",
    "1; SELECT pg_sleep(5)",
    "$1",
    "%s %s %s",
    "\\x00",
    "NULL",
    "' || (SELECT token_hash FROM sessions LIMIT 1) || '",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "\\u0000",
    "chr_",
]

control = st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), max_size=12)
surrogates = st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3)
near_limits = st.builds(
    lambda ch, n: ch * n,
    st.sampled_from(["a", "é", " ", "\n", "語", "😀", "\x00"]),
    st.sampled_from([0, 1, 31, 32, 33, 99, 100, 101, 199, 200, 201, 99_999, 100_000, 100_001]),
)
texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    control,
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=8), surrogates, st.text(max_size=8)),
    st.sampled_from(SQLISH),
    near_limits,
    st.sampled_from(["do the thing", "  padded  ", "", " ", "ok"]),
)
bad_ids = st.one_of(
    st.uuids().map(str),
    st.sampled_from(["", " ", "0", "null", "00000000-0000-0000-0000-000000000000", "not-an-id"]),
    texts,
)


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any], in_ten: int = 7) -> Any:
    """`valid` about `in_ten` times in ten, else `other` (Hypothesis' one_of does not weigh
    its branches, and its search favours the wide ones)."""
    return st.integers(0, 9).flatmap(lambda k: valid if k < in_ten else other)


# Mostly valid references (so calls reach deep code), sometimes anything at all.
room_ids = mostly(st.just(Ref("room")), st.one_of(st.just(Ref("foreign_room")), bad_ids), 8)
task_ids = mostly(
    st.one_of(
        st.just(Ref("active_task")),  # the room's pending or in-progress task
        st.integers(0, 50).map(lambda i: Ref("task", -1 - i)),  # the room's newest first
    ),
    st.one_of(
        st.integers(0, 500).map(lambda i: Ref("any_task", i)),
        st.just(Ref("foreign_task")),
        bad_ids,
    ),
)
roles = mostly(
    st.one_of(
        st.integers(0, 20).map(lambda i: Ref("active_role", i)),  # may claim or hand off
        st.integers(0, 20).map(lambda i: Ref("role", i)),
    ),
    st.one_of(
        st.sampled_from(
            [
                "builder",
                "reviewer",
                "manager",
                "user",
                "Builder",
                " builder ",
                "BUILDER",
                "nobody",
                "a" * 32,
                "a" * 33,
                "x-y",
                "1abc",
                "user ",
                "-",
                "tester",
                "beta-2",
            ]
        ),
        texts,
    ),
)
keys = mostly(st.none(), st.one_of(st.sampled_from(["k1", "k2", "k3"]), texts), 6)
wrong_type = st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
classifications = mostly(
    st.sampled_from(["QUESTION", "NEW_FEATURE", "FOLLOW_UP"]),
    st.one_of(st.sampled_from(["question", "BUG", ""]), wrong_type),
)
team_roles = st.one_of(
    st.none(),
    st.lists(roles, max_size=14),
    st.lists(st.sampled_from(["a", "b", "c", "d", "user"]), max_size=4),
    st.builds(lambda n: [f"r{i}" for i in range(n)], st.integers(0, 14)),
)
contents = mostly(
    st.sampled_from(["please build X", "a question?", "done", "ok 👍", "line\nbreak"]),
    st.one_of(texts, wrong_type),
    6,
)
callers = mostly(
    st.just("owner"),
    st.sampled_from(["builder", "builder", "reviewer", "manager", "other", "none", "garbage"]),
)


def inp(**args: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(args).map(lambda v: {"input": v})


def op(doc: str, variables: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return variables.map(lambda v: (doc, v))


MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "createGuestSession": op(
        "mutation($n: String) { createGuestSession(displayName: $n) { token user { id } } }",
        st.fixed_dictionaries({"n": st.one_of(st.none(), texts)}),
    ),
    "createChatroom": op(
        "mutation($input: CreateChatroomInput!) { createChatroom(input: $input) { id teamRoles } }",
        inp(
            teamId=st.one_of(
                st.none(), st.sampled_from(["pair", "squad", "custom", "PAIR"]), texts
            ),
            name=st.one_of(st.none(), texts),
            roles=team_roles,
            entryPoint=st.one_of(st.none(), roles),
            idempotencyKey=keys,
        ),
    ),
    "renameChatroom": op(
        "mutation($c: ID!, $n: String!) { renameChatroom(chatroomId: $c, name: $n) { id } }",
        st.fixed_dictionaries({"c": room_ids, "n": st.one_of(texts, wrong_type)}),
    ),
    "completeChatroom": op(
        "mutation($c: ID!) { completeChatroom(chatroomId: $c) { id status } }",
        st.fixed_dictionaries({"c": room_ids}),
    ),
    "interruptChatroom": op(
        "mutation($c: ID!) { interruptChatroom(chatroomId: $c) { id } }",
        st.fixed_dictionaries({"c": room_ids}),
    ),
    "joinChatroom": op(
        "mutation($c: ID!, $r: String!) { joinChatroom(chatroomId: $c, role: $r) { role } }",
        st.fixed_dictionaries({"c": room_ids, "r": roles}),
    ),
    "sendMessage": op(
        "mutation($input: SendMessageInput!) { sendMessage(input: $input)"
        " { message { id seq } task { id status } } }",
        inp(
            chatroomId=room_ids,
            content=contents,
            senderRole=mostly(st.just("user"), roles),
            targetRole=mostly(st.none(), roles),
            idempotencyKey=keys,
        ),
    ),
    "sendHandoff": op(
        "mutation($input: SendHandoffInput!) { sendHandoff(input: $input)"
        " { message { id } newTask { id } promotedTask { id } } }",
        inp(
            chatroomId=room_ids,
            senderRole=mostly(st.just(Ref("active_role")), roles),
            targetRole=mostly(st.integers(0, 20).map(lambda i: Ref("role", i)), roles),
            content=contents,
            idempotencyKey=keys,
        ),
    ),
    "claimTask": op(
        "mutation($input: ClaimTaskInput!) { claimTask(input: $input) { success task { id } } }",
        inp(chatroomId=room_ids, taskId=task_ids, role=roles, idempotencyKey=keys),
    ),
    "classifyTask": op(
        "mutation($input: ClassifyTaskInput!) { classifyTask(input: $input) { id } }",
        inp(
            chatroomId=room_ids,
            role=mostly(st.just(Ref("active_role")), roles),
            classification=classifications,
        ),
    ),
    "addBacklogTask": op(
        "mutation($input: AddBacklogTaskInput!) { addBacklogTask(input: $input) { id } }",
        inp(chatroomId=room_ids, content=contents),
    ),
    "updateTask": op(
        "mutation($input: UpdateTaskInput!) { updateTask(input: $input) { id } }",
        inp(chatroomId=room_ids, taskId=task_ids, content=contents),
    ),
    "moveTaskToQueue": op(
        "mutation($input: TaskRefInput!) { moveTaskToQueue(input: $input) { id status } }",
        inp(chatroomId=room_ids, taskId=task_ids),
    ),
    "completeTask": op(
        "mutation($input: CompleteTaskInput!) { completeTask(input: $input) { id status } }",
        inp(
            chatroomId=room_ids,
            taskId=task_ids,
            force=st.one_of(st.booleans(), st.booleans(), st.sampled_from(["true", 1, None])),
        ),
    ),
    "cancelTask": op(
        "mutation($input: TaskRefInput!) { cancelTask(input: $input) { id status } }",
        inp(chatroomId=room_ids, taskId=task_ids),
    ),
    "releaseTask": op(
        "mutation($input: TaskRefInput!) { releaseTask(input: $input) { id status } }",
        inp(chatroomId=room_ids, taskId=task_ids),
    ),
    "requestCliLogin": op(
        "mutation($d: String) { requestCliLogin(deviceName: $d) { requestId userCode } }",
        st.fixed_dictionaries({"d": st.one_of(st.none(), texts)}),
    ),
    "approveCliLogin": op(
        "mutation($c: String!) { approveCliLogin(userCode: $c) { status } }",
        st.fixed_dictionaries(
            {"c": st.one_of(st.integers(0, 50).map(lambda i: Ref("code", i)), texts)}
        ),
    ),
    "denyCliLogin": op(
        "mutation($c: String!) { denyCliLogin(userCode: $c) { status } }",
        st.fixed_dictionaries(
            {"c": st.one_of(st.integers(0, 50).map(lambda i: Ref("code", i)), texts)}
        ),
    ),
    # Never without an id (nor ""; see test_revocation): that logs the caller out, and the
    # fuzz would go on as nobody.
    "revokeSession": op(
        "mutation($id: ID) { revokeSession(sessionId: $id) { id } }",
        st.fixed_dictionaries(
            {
                "id": st.one_of(
                    st.integers(0, 50).map(lambda i: Ref("session", i)),
                    bad_ids.filter(lambda v: v != ""),
                )
            }
        ),
    ),
    "createAgentToken": op(
        "mutation($c: ID!, $r: String!) { createAgentToken(chatroomId: $c, role: $r)"
        " { token session { id } } }",
        st.fixed_dictionaries({"c": room_ids, "r": roles}),
    ),
}


@dataclass(frozen=True)
class Call:
    name: str
    doc: str
    variables: dict[str, Any]
    caller: str
    room: int


# The chain's own operations are drawn more often, so chains really run (claim, classify,
# hand off, queue, promote) while everything else is thrown at them.
WEIGHT = {"sendMessage": 4, "claimTask": 4, "sendHandoff": 4, "classifyTask": 2, "messages": 3}


def calls(pool: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Call]:
    names = [name for name in sorted(pool) for _ in range(WEIGHT.get(name, 1))]
    return st.sampled_from(names).flatmap(
        lambda name: st.builds(
            lambda dv, caller, room: Call(name, dv[0], dv[1], caller, room),
            pool[name],
            callers,
            st.integers(0, 1000),
        )
    )


def pick_room(w: World, c: Call) -> dict[str, Any]:
    # Completing one of the three seeded rooms would starve the fuzz of deep paths: those
    # are completed only on rooms the fuzz created itself.
    if c.name == "completeChatroom" and len(w.rooms) > 3:
        return w.rooms[3 + c.room % (len(w.rooms) - 3)]
    if c.name == "completeChatroom":
        return {"id": str(uuid.uuid4()), "roles": []}
    return w.rooms[c.room % len(w.rooms)]


# --- sending and checking -----------------------------------------------------------------------


async def send(client: httpx.AsyncClient, w: World, c: Call) -> None:
    room = pick_room(w, c)
    variables = resolve(c.variables, w, room)
    token = w.callers[c.caller]
    body = json.dumps({"query": c.doc, "variables": variables}).encode()  # ASCII: \\ud800 ok
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    resp = await client.post(w.server.http_url, content=body, headers=headers)
    w.sent += 1
    where = f"{c.name} as {c.caller} with {json.dumps(variables)[:600]}"
    if len(body) > BODY_LIMIT:
        assert resp.status_code == 413, where
        assert resp.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", where
        w.outcomes["413"] = w.outcomes.get("413", 0) + 1
        return
    assert resp.status_code == 200, f"{where}: HTTP {resp.status_code} {resp.text[:300]}"
    data = resp.json()
    for error in data.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code != "INTERNAL", f"{where}: {error}"
        assert code in CODES, f"{where}: error without a documented code: {error}"
        message = str(error.get("message", "")).lower()
        echoed = json.dumps(variables, ensure_ascii=False).lower()  # a message may quote input
        leaked = [t for t in DRIVER_TEXT if t in message and t not in echoed]
        assert not leaked, f"{where}: {error}"
        w.outcomes[code] = w.outcomes.get(code, 0) + 1
    if not data.get("errors"):
        w.outcomes["ok"] = w.outcomes.get("ok", 0) + 1
        w.succeeded[c.name] = w.succeeded.get(c.name, 0) + 1
        learn(w, c.name, data.get("data") or {})


def learn(w: World, name: str, data: dict[str, Any]) -> None:
    """Grow the pools from what the fuzz created, so later calls reach it."""
    text = json.dumps(data)
    if "chr_" in text:
        for token in (v for v in _strings(data) if v.startswith("chr_")):
            remember(token)
    if name == "createChatroom" and len(w.rooms) < 40:
        room = data["createChatroom"]
        w.rooms.append({"id": room["id"], "roles": room["teamRoles"]})
    elif name == "createAgentToken":
        w.sessions.append(data["createAgentToken"]["session"]["id"])
    elif name == "requestCliLogin":
        w.codes.append(data["requestCliLogin"]["userCode"])


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


INVARIANTS = """
SELECT 'two active tasks in room ' || chatroom_id FROM tasks
 WHERE status IN ('pending', 'in_progress') GROUP BY chatroom_id HAVING count(*) > 1
UNION ALL
SELECT 'orphan participant ' || p.id FROM participants p
  LEFT JOIN chatrooms c ON c.id = p.chatroom_id WHERE c.id IS NULL
UNION ALL
SELECT 'orphan message ' || m.id FROM messages m
  LEFT JOIN chatrooms c ON c.id = m.chatroom_id WHERE c.id IS NULL
UNION ALL
SELECT 'orphan task ' || t.id FROM tasks t
  LEFT JOIN chatrooms c ON c.id = t.chatroom_id WHERE c.id IS NULL
UNION ALL
SELECT 'orphan room event ' || e.chatroom_id || '/' || e.seq FROM room_events e
  LEFT JOIN chatrooms c ON c.id = e.chatroom_id WHERE c.id IS NULL
UNION ALL
SELECT 'task ' || t.id || ': source message missing or in another room' FROM tasks t
  LEFT JOIN messages m ON m.id = t.source_message_id
 WHERE t.source_message_id IS NOT NULL AND (m.id IS NULL OR m.chatroom_id <> t.chatroom_id)
UNION ALL
SELECT 'task ' || t.id || ': origin message missing or in another room' FROM tasks t
  LEFT JOIN messages m ON m.id = t.origin_message_id
 WHERE t.origin_message_id IS NOT NULL AND (m.id IS NULL OR m.chatroom_id <> t.chatroom_id)
UNION ALL
SELECT 'message ' || m.id || ': its task is missing or in another room' FROM messages m
  LEFT JOIN tasks t ON t.id = m.task_id
 WHERE m.task_id IS NOT NULL AND (t.id IS NULL OR t.chatroom_id <> m.chatroom_id)
UNION ALL
SELECT 'room ' || c.id || ': message seqs are not 1..' || c.last_message_seq
  FROM chatrooms c
  LEFT JOIN (SELECT chatroom_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi,
                    count(DISTINCT seq) AS d
               FROM messages GROUP BY chatroom_id) m ON m.chatroom_id = c.id
 WHERE coalesce(m.n, 0) <> c.last_message_seq
    OR (m.n > 0 AND (m.lo <> 1 OR m.hi <> m.n OR m.d <> m.n))
UNION ALL
SELECT 'room ' || c.id || ': event seqs are not 1..' || c.last_event_seq
  FROM chatrooms c
  LEFT JOIN (SELECT chatroom_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi,
                    count(DISTINCT seq) AS d
               FROM room_events GROUP BY chatroom_id) e ON e.chatroom_id = c.id
 WHERE coalesce(e.n, 0) <> c.last_event_seq
    OR (e.n > 0 AND (e.lo <> 1 OR e.hi <> e.n OR e.d <> e.n))
UNION ALL
SELECT 'queued task ' || id || ' has no queue position' FROM tasks
 WHERE status = 'queued' AND queue_position IS NULL
UNION ALL
SELECT 'room ' || chatroom_id || ': queued tasks share position ' || queue_position FROM tasks
 WHERE status = 'queued' GROUP BY chatroom_id, queue_position HAVING count(*) > 1
UNION ALL
SELECT 'room ' || c.id || ': participants are not its team' FROM chatrooms c
 WHERE (SELECT array_agg(p.role ORDER BY p.role) FROM participants p
         WHERE p.chatroom_id = c.id)
       IS DISTINCT FROM (SELECT array_agg(r ORDER BY r) FROM unnest(c.team_roles) AS r)
UNION ALL
SELECT 'task ' || t.id || ' is assigned to ' || t.assigned_to || ', not a team role'
  FROM tasks t JOIN chatrooms c ON c.id = t.chatroom_id
 WHERE t.assigned_to IS NOT NULL AND NOT (t.assigned_to = ANY (c.team_roles))
UNION ALL
SELECT 'completed room ' || c.id || ' holds ' || t.status || ' task ' || t.id
  FROM tasks t JOIN chatrooms c ON c.id = t.chatroom_id
 WHERE c.status = 'completed' AND t.status IN ('pending', 'in_progress', 'queued')
"""


async def check_invariants(w: World) -> None:
    violations = [r[0] for r in await dbutil.fetch(w.db_url, INVARIANTS)]
    assert not violations, "database invariants broken:\n" + "\n".join(violations[:20])


def run_property(
    loop: asyncio.AbstractEventLoop,
    examples: int,
    strategy: st.SearchStrategy[list[Call]],
    batch: Callable[[list[Call]], Any],
) -> None:
    """Hypothesis drives from this (worker) thread; every batch runs on the test's loop."""

    @settings(SETTINGS, max_examples=examples)
    @given(strategy)
    def prop(ops: list[Call]) -> None:
        asyncio.run_coroutine_threadsafe(batch(ops), loop).result(timeout=120)

    prop()


async def test_fuzz_every_mutation(world: World) -> None:
    await check_invariants(world)
    limits = httpx.Limits(max_connections=BATCH, max_keepalive_connections=BATCH)
    async with httpx.AsyncClient(timeout=60.0, trust_env=False, limits=limits) as client:

        async def batch(ops: list[Call]) -> None:
            await world.refresh()
            await asyncio.gather(*(send(client, world, c) for c in ops))
            await check_invariants(world)

        strategy = st.lists(calls(MUTATIONS), min_size=BATCH, max_size=BATCH)
        await asyncio.to_thread(
            run_property, asyncio.get_running_loop(), MUTATION_EXAMPLES, strategy, batch
        )
    outcomes = dict(sorted(world.outcomes.items()))
    print(f"\nfuzz: {world.sent} mutation inputs sent; outcomes {outcomes}")
    assert world.sent >= MIN_INPUTS
    # The fuzz reached deep code: calls succeeded, and domain refusals happened too.
    assert world.outcomes.get("ok", 0) > MIN_INPUTS // 20, world.outcomes
    for code in ("BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED"):
        assert world.outcomes.get(code, 0) > 0, (code, world.outcomes)
    counts = await dbutil.fetchrow(
        world.db_url,
        "SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM messages) AS msgs,"
        " (SELECT count(*) FROM tasks WHERE status = 'completed') AS done,"
        " (SELECT count(*) FROM chatrooms) AS rooms",
    )
    print(f"fuzz: successes per mutation {dict(sorted(world.succeeded.items()))}")
    print(f"fuzz: database holds {dict(counts or {})}")


# --- queries: ints, cursors, enums ----------------------------------------------------------------


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(f"seq:{value}".encode()).decode()


ints = st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, 200, 201]))
seqs = mostly(
    st.sampled_from([0, 1, 5, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 10**20, -(10**20)]),
    st.integers(-(2**70), 2**70),
    5,
)
cursors = mostly(
    st.none(),
    mostly(
        seqs.map(cursor_of),
        st.one_of(
            texts,
            st.text(max_size=20).map(lambda s: base64.urlsafe_b64encode(s.encode()).decode()),
        ),
    ),
    5,
)
statuses = st.one_of(
    st.none(),
    st.lists(
        st.sampled_from(["PENDING", "IN_PROGRESS", "QUEUED", "BACKLOG", "COMPLETED", "CANCELLED"]),
        max_size=7,
    ),
    st.lists(st.sampled_from(["pending", "DONE", ""]), min_size=1, max_size=2),
)

QUERIES: dict[str, st.SearchStrategy[Any]] = {
    "messages": op(
        "query($c: ID!, $f: Int, $a: String, $l: Int, $b: String) { messages(chatroomId: $c,"
        " first: $f, after: $a, last: $l, before: $b) { nodes { seq } pageInfo"
        " { hasNextPage endCursor } } }",
        st.fixed_dictionaries({"c": room_ids, "f": ints, "a": cursors, "l": ints, "b": cursors}),
    ),
    "tasks": op(
        "query($c: ID!, $s: [TaskStatus!], $n: Int!) { tasks(chatroomId: $c, statuses: $s,"
        " limit: $n) { id } }",
        st.fixed_dictionaries(
            {"c": room_ids, "s": statuses, "n": st.integers(-(2**31), 2**31 - 1)}
        ),
    ),
    "chatroom": op(
        "query($c: ID!) { chatroom(id: $c) { id } }", st.fixed_dictionaries({"c": room_ids})
    ),
    "taskCounts": op(
        "query($c: ID!) { taskCounts(chatroomId: $c) { pending } }",
        st.fixed_dictionaries({"c": room_ids}),
    ),
    "pendingTasks": op(
        "query($c: ID!, $r: String!) { pendingTasks(chatroomId: $c, role: $r) { id } }",
        st.fixed_dictionaries({"c": room_ids, "r": roles}),
    ),
    "contextWindow": op(
        "query($c: ID!, $r: String!) { contextWindow(chatroomId: $c, role: $r) { truncated } }",
        st.fixed_dictionaries({"c": room_ids, "r": roles}),
    ),
    "rolePrompt": op(
        "query($c: ID!, $r: String!) { rolePrompt(chatroomId: $c, role: $r) { role } }",
        st.fixed_dictionaries({"c": room_ids, "r": roles}),
    ),
    "chatrooms": op(
        "query($s: RoomStatus) { chatrooms(status: $s) { id } }",
        st.fixed_dictionaries({"s": st.one_of(st.none(), st.sampled_from(["ACTIVE", "x"]))}),
    ),
    "cliLoginRequest": op(
        "query($c: String!) { cliLoginRequest(userCode: $c) { status } }",
        st.fixed_dictionaries(
            {"c": st.one_of(st.integers(0, 9).map(lambda i: Ref("code", i)), texts)}
        ),
    ),
}


async def test_fuzz_queries(world: World) -> None:
    async with httpx.AsyncClient(timeout=60.0, trust_env=False) as client:
        before = world.sent

        async def batch(ops: list[Call]) -> None:
            await world.refresh()
            await asyncio.gather(*(send(client, world, c) for c in ops))

        strategy = st.lists(calls(QUERIES), min_size=BATCH, max_size=BATCH)
        await asyncio.to_thread(
            run_property, asyncio.get_running_loop(), QUERY_EXAMPLES, strategy, batch
        )
    print(f"\nfuzz: {world.sent - before} query inputs sent")
    print(f"fuzz: successes per field {dict(sorted(world.succeeded.items()))}")
    await check_invariants(world)


async def test_a_cursor_beyond_int32_is_bad_user_input(world: World) -> None:
    """Found by the query fuzz: `after`/`before` cursors are decoded to any Python int and
    sent to PostgreSQL as int4, which the driver refuses: INTERNAL instead of BAD_USER_INPUT."""
    room = world.rooms[0]["id"]
    doc = (
        "query($c: ID!, $a: String, $b: String) { messages(chatroomId: $c, after: $a,"
        " before: $b) { nodes { seq } } }"
    )
    for value in (2**31, -(2**31) - 1, 10**20):
        for arg in ("a", "b"):
            raw = await post_graphql(
                world.server, doc, {"c": room, arg: cursor_of(value)}, token=world.owner
            )
            error = (raw.get("errors") or [{}])[0]
            code = (error.get("extensions") or {}).get("code")
            assert code == "BAD_USER_INPUT", f"cursor seq:{value} as {arg}: {error}"
