"""Helpers for the live-delivery tests: GraphQL documents, a small HTTP API wrapper, and a
subscription stream that is read with timeouts (a broken delivery fails, never hangs).

Everything goes through a real uvicorn server with the real gql client: mutations and queries
over HTTP (``gql_http``), subscriptions over websockets (``gql_ws``) on either subprotocol.
Direct database reads use asyncpg (``tests.support.dbutil``), bypassing the app.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
from gql.transport.exceptions import TransportQueryError

from tests.support import dbutil
from tests.support.gql_client import GqlSession, Subprotocol, gql_http, gql_ws
from tests.support.server import LiveServer

PROTOCOLS: list[Subprotocol] = ["graphql-transport-ws", "graphql-ws"]

# How long a delivery may take before the test fails (it is normally milliseconds).
DELIVERY_TIMEOUT = 10.0
# How long a condition polled through the API may take to become true.
POLL_TIMEOUT = 10.0

MESSAGE = "id seq senderRole targetRole content type"
TASK = "id status content createdBy assignedTo attempt startedAt sourceMessage { id }"
PARTICIPANT = "role status lastSeenAt"

CREATE_GUEST = "mutation($n: String) { createGuestSession(displayName: $n) { token user { id } } }"
CREATE_ROOM = (
    "mutation($input: CreateChatroomInput!) { createChatroom(input: $input) {"
    " id entryPoint teamRoles lastEventSeq } }"
)
ROOM = (
    "query($id: ID!) { chatroom(id: $id) { id lastEventSeq"
    f" participants {{ {PARTICIPANT} }} }} }}"
)
SEND = (
    "mutation($input: SendMessageInput!) { sendMessage(input: $input) {"
    f" message {{ {MESSAGE} }} task {{ {TASK} }} }} }}"
)
CLAIM = (
    "mutation($input: ClaimTaskInput!) { claimTask(input: $input) {"
    f" success task {{ {TASK} }} participant {{ role status }} }} }}"
)
HANDOFF = (
    "mutation($input: SendHandoffInput!) { sendHandoff(input: $input) {"
    f" message {{ {MESSAGE} }} completedTasks {{ {TASK} }} newTask {{ {TASK} }} }} }}"
)
INTERRUPT = "mutation($id: ID!) { interruptChatroom(chatroomId: $id) { id } }"
RELEASE = f"mutation($input: TaskRefInput!) {{ releaseTask(input: $input) {{ {TASK} }} }}"
TASKS = f"query($c: ID!) {{ tasks(chatroomId: $c) {{ {TASK} }} }}"
PENDING = f"query($c: ID!, $r: String!) {{ pendingTasks(chatroomId: $c, role: $r) {{ {TASK} }} }}"

TASK_AVAILABLE = (
    "subscription($c: ID!, $r: String!) { taskAvailable(chatroomId: $c, role: $r) {"
    f" kind resumed task {{ {TASK} }} message {{ {MESSAGE} }} }} }}"
)
ROOM_EVENTS = (
    "subscription($c: ID!, $after: Int) { roomEvents(chatroomId: $c, afterSeq: $after) {"
    " seq kind chatroomId message { id seq type } task { id status attempt assignedTo }"
    " participant { role status } } }"
)


# --- HTTP API ---------------------------------------------------------------------------------


class Api:
    """Mutations and queries over one HTTP gql session."""

    def __init__(self, session: GqlSession) -> None:
        self.s = session

    async def execute(self, doc: str, /, **variables: Any) -> dict[str, Any]:
        return await self.s.execute(doc, **variables)

    async def create_room(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("name", "live delivery")
        return (await self.s.execute(CREATE_ROOM, input=fields))["createChatroom"]

    async def room(self, room_id: str) -> dict[str, Any]:
        return (await self.s.execute(ROOM, id=room_id))["chatroom"]

    async def statuses(self, room_id: str) -> dict[str, str]:
        return {p["role"]: p["status"] for p in (await self.room(room_id))["participants"]}

    async def last_event_seq(self, room_id: str) -> int:
        return int((await self.room(room_id))["lastEventSeq"])

    async def send(self, room_id: str, content: str, **fields: Any) -> dict[str, Any]:
        fields = {"chatroomId": room_id, "content": content, **fields}
        return (await self.s.execute(SEND, input=fields))["sendMessage"]

    async def claim(self, room_id: str, task_id: str, role: str) -> dict[str, Any]:
        data = await self.s.execute(
            CLAIM, input={"chatroomId": room_id, "taskId": task_id, "role": role}
        )
        return data["claimTask"]

    async def handoff(
        self, room_id: str, sender: str, target: str, content: str = "done"
    ) -> dict[str, Any]:
        data = await self.s.execute(
            HANDOFF,
            input={
                "chatroomId": room_id,
                "senderRole": sender,
                "targetRole": target,
                "content": content,
            },
        )
        return data["sendHandoff"]

    async def interrupt(self, room_id: str) -> None:
        await self.s.execute(INTERRUPT, id=room_id)

    async def release(self, room_id: str, task_id: str) -> dict[str, Any]:
        data = await self.s.execute(RELEASE, input={"chatroomId": room_id, "taskId": task_id})
        return data["releaseTask"]

    async def tasks(self, room_id: str) -> list[dict[str, Any]]:
        return (await self.s.execute(TASKS, c=room_id))["tasks"]

    async def pending(self, room_id: str, role: str) -> list[dict[str, Any]]:
        return (await self.s.execute(PENDING, c=room_id, r=role))["pendingTasks"]

    async def wait_status(
        self, room_id: str, role: str, status: str, within: float = POLL_TIMEOUT
    ) -> None:
        """Poll chatroom.participants until ``role`` has ``status`` (fails after timeout)."""
        deadline = time.monotonic() + within
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            seen = await self.statuses(room_id)
            if seen.get(role) == status:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{role} never became {status} in {within}s; last seen {seen}")


@asynccontextmanager
async def api(server: LiveServer, token: str | None) -> AsyncIterator[Api]:
    async with gql_http(server, token) as s:
        yield Api(s)


async def new_token(server: LiveServer, name: str = "live") -> str:
    async with gql_http(server) as s:
        return str((await s.execute(CREATE_GUEST, n=name))["createGuestSession"]["token"])


async def new_room(server: LiveServer, **fields: Any) -> tuple[str, str]:
    """A fresh owner and a pair room: (token, room id)."""
    token = await new_token(server)
    async with api(server, token) as a:
        room = await a.create_room(**fields)
    return token, str(room["id"])


# --- subscriptions ----------------------------------------------------------------------------


class StreamEnded(Exception):
    """The server completed the subscription."""


class Stream:
    """One subscription's results, pumped into a queue so every read has a timeout."""

    def __init__(self, results: AsyncIterator[dict[str, Any]]) -> None:
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(results))

    async def _pump(self, results: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for item in results:
                await self._queue.put(("item", item))
        except Exception as exc:  # a GraphQL error (TransportQueryError) or a lost transport
            await self._queue.put(("error", exc))
        else:
            await self._queue.put(("end", None))

    async def next(self, within: float = DELIVERY_TIMEOUT) -> dict[str, Any]:
        """The next result; raises StreamEnded, the subscription's error, or TimeoutError."""
        try:
            kind, value = await asyncio.wait_for(self._queue.get(), within)
        except TimeoutError:
            raise TimeoutError(f"no result within {within}s") from None
        if kind == "item":
            return value
        if kind == "end":
            raise StreamEnded
        raise value

    async def expect_end(self, within: float = DELIVERY_TIMEOUT) -> None:
        try:
            item = await self.next(within)
        except StreamEnded:
            return
        raise AssertionError(f"expected the stream to end, got {item!r}")

    async def expect_error(self, within: float = DELIVERY_TIMEOUT) -> tuple[str | None, str]:
        try:
            item = await self.next(within)
        except TransportQueryError as exc:
            first = (exc.errors or [{}])[0]
            return (first.get("extensions") or {}).get("code"), str(first.get("message", ""))
        except StreamEnded:
            raise AssertionError("expected an error, the stream ended cleanly") from None
        raise AssertionError(f"expected an error, got {item!r}")

    async def expect_nothing(self, seconds: float) -> None:
        """Nothing arrives (and the stream does not end) for ``seconds``."""
        try:
            kind, value = await asyncio.wait_for(self._queue.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {kind}: {value!r}")

    async def close(self) -> None:
        """Unsubscribe cleanly (gql sends complete/stop when its generator is closed)."""
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


@asynccontextmanager
async def subscription(
    server: LiveServer,
    token: str | None,
    protocol: Subprotocol,
    doc: str,
    /,
    **variables: Any,
) -> AsyncIterator[Stream]:
    """A websocket of its own with one subscription on it."""
    async with gql_ws(server, token, subprotocol=protocol) as ws:
        assert ws.subprotocol == protocol
        stream = Stream(ws.subscribe(doc, **variables))
        try:
            yield stream
        finally:
            await stream.close()


def task_available(server: LiveServer, token: str | None, protocol: Subprotocol, room_id: str,
                   role: str):  # fmt: skip
    return subscription(server, token, protocol, TASK_AVAILABLE, c=room_id, r=role)


def room_events(
    server: LiveServer,
    token: str | None,
    protocol: Subprotocol,
    room_id: str,
    after_seq: int | None = None,
):
    return subscription(server, token, protocol, ROOM_EVENTS, c=room_id, after=after_seq)


async def delivery(stream: Stream, within: float = DELIVERY_TIMEOUT) -> dict[str, Any]:
    return (await stream.next(within))["taskAvailable"]


async def event(stream: Stream, within: float = DELIVERY_TIMEOUT) -> dict[str, Any]:
    return (await stream.next(within))["roomEvents"]


async def events_through(
    stream: Stream, last_seq: int, within: float = DELIVERY_TIMEOUT
) -> list[dict[str, Any]]:
    """Read events until (and including) ``last_seq``; TimeoutError says where they stopped."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while not out or out[-1]["seq"] < last_seq:
        try:
            out.append(await event(stream, max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            got = f"{out[0]['seq']}..{out[-1]['seq']}" if out else "nothing"
            raise TimeoutError(
                f"events through seq {last_seq} expected within {within}s; received {got}"
            ) from None
    return out


# --- server health and the database ------------------------------------------------------------


async def healthz(server: LiveServer) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        resp = await client.get(f"{server.base_url}/healthz")
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert isinstance(data, dict)
    return data


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, within: float = POLL_TIMEOUT
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true after {within}s: {what}")


async def db_events(url: str, room_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
    rows = await dbutil.fetch(
        url,
        "SELECT seq, kind, payload FROM room_events WHERE chatroom_id = $1 AND seq > $2"
        " ORDER BY seq",
        uuid.UUID(room_id),
        after_seq,
    )
    return [dict(r) for r in rows]


async def db_task(url: str, task_id: str) -> dict[str, Any]:
    row = await dbutil.fetchrow(url, "SELECT * FROM tasks WHERE id = $1", uuid.UUID(task_id))
    assert row is not None, task_id
    return dict(row)


async def db_statuses(url: str, room_id: str) -> dict[str, str]:
    rows = await dbutil.fetch(
        url, "SELECT role, status FROM participants WHERE chatroom_id = $1", uuid.UUID(room_id)
    )
    return {r["role"]: r["status"] for r in rows}
