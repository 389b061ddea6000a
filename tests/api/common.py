"""GraphQL documents and small helpers shared by the API tests.

Every helper goes through the live server with the gql client; the DB readers use asyncpg
directly (``tests.support.dbutil``) to check what really got committed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from gql.transport.exceptions import TransportQueryError

from tests.support import dbutil
from tests.support.gql_client import GqlSession, gql_http
from tests.support.server import LiveServer

T = TypeVar("T")
Outcome = tuple[str, Any]
BARRIER_TIMEOUT = 30.0

MESSAGE = "id seq senderRole targetRole content type classification effectiveClassification"
MESSAGE += " claimedByRole"
TASK = (
    "id status content createdBy assignedTo queuePosition attempt startedAt completedAt"
    " originMessage { id } sourceMessage { id }"
)
PARTICIPANT = "role status"
ROOM = "id name status teamId teamRoles entryPoint lastEventSeq participants { role status }"

CREATE_GUEST = "mutation($n: String) { createGuestSession(displayName: $n) { token user { id } } }"
CREATE_ROOM = (
    f"mutation($input: CreateChatroomInput!) {{ createChatroom(input: $input) {{ {ROOM} }} }}"
)
ROOM_Q = f"query($id: ID!) {{ chatroom(id: $id) {{ {ROOM} }} }}"
SEND = (
    "mutation($input: SendMessageInput!) { sendMessage(input: $input) {"
    f" message {{ {MESSAGE} }} task {{ {TASK} }} }} }}"
)
HANDOFF = (
    "mutation($input: SendHandoffInput!) { sendHandoff(input: $input) {"
    f" message {{ {MESSAGE} }} completedTasks {{ {TASK} }} newTask {{ {TASK} }}"
    f" promotedTask {{ {TASK} }} sender {{ {PARTICIPANT} }} }} }}"
)
CLAIM = (
    "mutation($input: ClaimTaskInput!) { claimTask(input: $input) {"
    f" success task {{ {TASK} }} message {{ {MESSAGE} }} participant {{ {PARTICIPANT} }} }} }}"
)
CLASSIFY = (
    "mutation($input: ClassifyTaskInput!) { classifyTask(input: $input) {"
    f" {MESSAGE} follows {{ id }} }} }}"
)
TASKS = f"query($c: ID!, $s: [TaskStatus!]) {{ tasks(chatroomId: $c, statuses: $s) {{ {TASK} }} }}"
PENDING = f"query($c: ID!, $r: String!) {{ pendingTasks(chatroomId: $c, role: $r) {{ {TASK} }} }}"
COUNTS = (
    "query($c: ID!) { taskCounts(chatroomId: $c) "
    "{ pending inProgress queued backlog completed cancelled } }"
)
MESSAGES = (
    "query($c: ID!, $first: Int, $after: String, $last: Int, $before: String) {"
    " messages(chatroomId: $c, first: $first, after: $after, last: $last, before: $before) {"
    f" edges {{ cursor node {{ {MESSAGE} }} }} nodes {{ seq }}"
    " pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
)


async def new_user(server: LiveServer, name: str = "tester") -> tuple[str, str]:
    """A fresh guest account: (bearer token, user id)."""
    async with gql_http(server) as s:
        data = (await s.execute(CREATE_GUEST, n=name))["createGuestSession"]
    return str(data["token"]), str(data["user"]["id"])


async def new_token(server: LiveServer, name: str = "tester") -> str:
    return (await new_user(server, name))[0]


async def concurrently(
    server: LiveServer, token: str, n: int, op: Callable[[Api, int], Awaitable[T]]
) -> list[Outcome]:
    """Run ``op`` n times at once, each on its OWN HTTP client (own connection pool).

    All clients are opened first and released together through a barrier, so the requests
    really overlap on the server. Each result is ("ok", value) or ("error", code).
    """
    barrier = asyncio.Barrier(n)

    async def one(i: int) -> Outcome:
        async with gql_http(server, token) as s:
            api = Api(s)
            async with asyncio.timeout(BARRIER_TIMEOUT):  # a client that never opens fails fast
                await barrier.wait()
            try:
                return ("ok", await op(api, i))
            except TransportQueryError as exc:
                errors = exc.errors or [{}]
                return ("error", (errors[0].get("extensions") or {}).get("code"))

    return list(await asyncio.gather(*(one(i) for i in range(n))))


@asynccontextmanager
async def client(server: LiveServer, token: str) -> AsyncIterator[Api]:
    async with gql_http(server, token) as s:
        yield Api(s)


class Api:
    """Thin typed-ish wrappers over one gql session (one HTTP client)."""

    def __init__(self, session: GqlSession) -> None:
        self.s = session

    async def execute(self, doc: str, /, **variables: Any) -> dict[str, Any]:
        return await self.s.execute(doc, **variables)

    async def create_room(self, **fields: Any) -> dict[str, Any]:
        return (await self.s.execute(CREATE_ROOM, input=fields))["createChatroom"]

    async def room(self, room_id: str) -> dict[str, Any]:
        return (await self.s.execute(ROOM_Q, id=room_id))["chatroom"]

    async def send(self, room_id: str, content: str, **fields: Any) -> dict[str, Any]:
        data = await self.s.execute(
            SEND, input={"chatroomId": room_id, "content": content, **fields}
        )
        return data["sendMessage"]

    async def claim(self, room_id: str, task_id: str, role: str, **fields: Any) -> dict[str, Any]:
        data = await self.s.execute(
            CLAIM, input={"chatroomId": room_id, "taskId": task_id, "role": role, **fields}
        )
        return data["claimTask"]

    async def handoff(
        self, room_id: str, sender: str, target: str, content: str = "done", **fields: Any
    ) -> dict[str, Any]:
        data = await self.s.execute(
            HANDOFF,
            input={
                "chatroomId": room_id,
                "senderRole": sender,
                "targetRole": target,
                "content": content,
                **fields,
            },
        )
        return data["sendHandoff"]

    async def classify(self, room_id: str, role: str, classification: str) -> dict[str, Any]:
        data = await self.s.execute(
            CLASSIFY,
            input={"chatroomId": room_id, "role": role, "classification": classification},
        )
        return data["classifyTask"]

    async def tasks(self, room_id: str, statuses: list[str] | None = None) -> list[dict[str, Any]]:
        return (await self.s.execute(TASKS, c=room_id, s=statuses))["tasks"]

    async def pending(self, room_id: str, role: str) -> list[dict[str, Any]]:
        return (await self.s.execute(PENDING, c=room_id, r=role))["pendingTasks"]

    async def counts(self, room_id: str) -> dict[str, int]:
        return (await self.s.execute(COUNTS, c=room_id))["taskCounts"]

    async def messages(self, room_id: str, **page: Any) -> dict[str, Any]:
        return (await self.s.execute(MESSAGES, c=room_id, **page))["messages"]

    async def all_messages(self, room_id: str) -> list[dict[str, Any]]:
        return [e["node"] for e in (await self.messages(room_id, first=200))["edges"]]

    async def request_and_claim(
        self, room_id: str, content: str, role: str = "builder"
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A user request in an idle room, claimed by ``role``: (sendMessage, claimTask)."""
        sent = await self.send(room_id, content)
        assert sent["task"]["status"] == "PENDING", sent
        claimed = await self.claim(room_id, sent["task"]["id"], role)
        assert claimed["success"] is True, claimed
        return sent, claimed


# --- direct reads (asyncpg, bypassing the app) ----------------------------------------------


async def db_tasks(url: str, room_id: str) -> list[dict[str, Any]]:
    rows = await dbutil.fetch(
        url,
        "SELECT * FROM tasks WHERE chatroom_id = $1 ORDER BY created_at, id",
        uuid.UUID(room_id),
    )
    return [dict(r) for r in rows]


async def db_messages(url: str, room_id: str) -> list[dict[str, Any]]:
    rows = await dbutil.fetch(
        url, "SELECT * FROM messages WHERE chatroom_id = $1 ORDER BY seq", uuid.UUID(room_id)
    )
    return [dict(r) for r in rows]


async def db_participants(url: str, room_id: str) -> dict[str, str]:
    rows = await dbutil.fetch(
        url, "SELECT role, status FROM participants WHERE chatroom_id = $1", uuid.UUID(room_id)
    )
    return {r["role"]: r["status"] for r in rows}


async def db_event_seqs(url: str, room_id: str) -> list[int]:
    rows = await dbutil.fetch(
        url, "SELECT seq FROM room_events WHERE chatroom_id = $1 ORDER BY seq", uuid.UUID(room_id)
    )
    return [int(r["seq"]) for r in rows]


async def db_room_state(url: str, room_id: str) -> dict[str, Any]:
    """Everything of one room, as committed (for before/after comparisons)."""
    rid = uuid.UUID(room_id)
    room = await dbutil.fetchrow(url, "SELECT * FROM chatrooms WHERE id = $1", rid)
    assert room is not None
    return {
        "room": dict(room),
        "tasks": await db_tasks(url, room_id),
        "messages": await db_messages(url, room_id),
        "participants": [
            dict(r)
            for r in await dbutil.fetch(
                url, "SELECT * FROM participants WHERE chatroom_id = $1 ORDER BY role", rid
            )
        ],
        "events": await db_event_seqs(url, room_id),
    }
