"""The chatroom API as the test suites (and the benchmarks) call it: one typed wrapper over any
client that executes a document, and subscriptions read with timeouts.

``Api`` wraps anything with ``execute(doc, **variables) -> data``: a gql session
(``connect``), the reliability tests' retrying client, the benchmarks' one-connection client.
Each method sends one document of ``tests.support.documents`` and returns its root field.
``Stream`` pumps one subscription into a queue so every read has a timeout: a broken delivery
fails a test, it never hangs it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol

from gql.transport.exceptions import TransportQueryError

from tests.support import documents as d
from tests.support.gql_client import HasUrls, Subprotocol, error_of, gql_http, gql_ws

# How long a delivery may take before the test fails (it is normally milliseconds).
DELIVERY_TIMEOUT = 10.0
# How long a condition polled through the API may take to become true.
POLL_TIMEOUT = 10.0


class Executor(Protocol):
    async def execute(self, doc: str, /, **variables: Any) -> dict[str, Any]: ...


class Api:
    """Mutations and queries over one client; variables are keyword arguments."""

    def __init__(self, client: Executor) -> None:
        self.s = client

    async def execute(self, doc: str, /, **variables: Any) -> dict[str, Any]:
        return await self.s.execute(doc, **variables)

    async def create_guest(self, name: str) -> dict[str, Any]:
        """A guest account: {token, user {id displayName}}."""
        return (await self.s.execute(d.CREATE_GUEST, displayName=name))["createGuestSession"]

    async def create_room(self, **fields: Any) -> dict[str, Any]:
        return (await self.s.execute(d.CREATE_ROOM, input=fields))["createChatroom"]

    async def room(self, room_id: str) -> dict[str, Any]:
        return (await self.s.execute(d.CHATROOM, id=room_id))["chatroom"]

    async def statuses(self, room_id: str) -> dict[str, str]:
        return {p["role"]: p["status"] for p in (await self.room(room_id))["participants"]}

    async def last_event_seq(self, room_id: str) -> int:
        return int((await self.room(room_id))["lastEventSeq"])

    async def send(self, room_id: str, content: str, **fields: Any) -> dict[str, Any]:
        fields = {"chatroomId": room_id, "content": content, **fields}
        return (await self.s.execute(d.SEND, input=fields))["sendMessage"]

    async def claim(self, room_id: str, task_id: str, role: str, **fields: Any) -> dict[str, Any]:
        fields = {"chatroomId": room_id, "taskId": task_id, "role": role, **fields}
        return (await self.s.execute(d.CLAIM, input=fields))["claimTask"]

    async def handoff(
        self, room_id: str, sender: str, target: str, content: str = "done", **fields: Any
    ) -> dict[str, Any]:
        fields = {
            "chatroomId": room_id,
            "senderRole": sender,
            "targetRole": target,
            "content": content,
            **fields,
        }
        return (await self.s.execute(d.HANDOFF, input=fields))["sendHandoff"]

    async def classify(self, room_id: str, role: str, classification: str) -> dict[str, Any]:
        fields = {"chatroomId": room_id, "role": role, "classification": classification}
        return (await self.s.execute(d.CLASSIFY, input=fields))["classifyTask"]

    async def interrupt(self, room_id: str) -> dict[str, Any]:
        return (await self.s.execute(d.INTERRUPT, c=room_id))["interruptChatroom"]

    async def release(self, room_id: str, task_id: str) -> dict[str, Any]:
        data = await self.s.execute(d.RELEASE, input={"chatroomId": room_id, "taskId": task_id})
        return data["releaseTask"]

    async def tasks(self, room_id: str, statuses: list[str] | None = None) -> list[dict[str, Any]]:
        return (await self.s.execute(d.TASKS, c=room_id, s=statuses))["tasks"]

    async def pending(self, room_id: str, role: str) -> list[dict[str, Any]]:
        return (await self.s.execute(d.PENDING, c=room_id, r=role))["pendingTasks"]

    async def counts(self, room_id: str) -> dict[str, int]:
        return (await self.s.execute(d.COUNTS, c=room_id))["taskCounts"]

    async def messages(self, room_id: str, **page: Any) -> dict[str, Any]:
        return (await self.s.execute(d.MESSAGES, c=room_id, **page))["messages"]

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
async def connect(server: HasUrls, token: str | None) -> AsyncIterator[Api]:
    """An ``Api`` over a gql HTTP session of its own."""
    async with gql_http(server, token) as s:
        yield Api(s)


async def new_user(server: HasUrls, name: str = "tester") -> tuple[str, str]:
    """A fresh guest account: (bearer token, user id)."""
    async with connect(server, None) as api:
        guest = await api.create_guest(name)
    return str(guest["token"]), str(guest["user"]["id"])


# --- subscriptions ----------------------------------------------------------------------------


class StreamEnded(Exception):
    """The server completed the subscription."""


class Stream:
    """One subscription's results, pumped into a queue so every read has a timeout. Each item
    carries the monotonic time it arrived; ``last_at`` is the last one read (for latencies)."""

    def __init__(self, results: AsyncIterator[dict[str, Any]]) -> None:
        self._queue: asyncio.Queue[tuple[str, Any, float]] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(results))
        self.last_at = 0.0

    async def _pump(self, results: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for item in results:
                await self._queue.put(("item", item, time.monotonic()))
        except Exception as exc:  # a GraphQL error (TransportQueryError) or a lost transport
            await self._queue.put(("error", exc, time.monotonic()))
        else:
            await self._queue.put(("end", None, time.monotonic()))

    async def raw(self, within: float = DELIVERY_TIMEOUT) -> tuple[str, Any, float]:
        """(kind, value, arrival time) of what comes next: an item, an error, or the end."""
        try:
            return await asyncio.wait_for(self._queue.get(), within)
        except TimeoutError:
            raise TimeoutError(f"no result within {within}s") from None

    async def next(self, within: float = DELIVERY_TIMEOUT) -> dict[str, Any]:
        """The next result; raises StreamEnded, the subscription's error, or TimeoutError."""
        kind, value, at = await self.raw(within)
        self.last_at = at
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
            return error_of(exc)
        except StreamEnded:
            raise AssertionError("expected an error, the stream ended cleanly") from None
        raise AssertionError(f"expected an error, got {item!r}")

    async def expect_nothing(self, seconds: float) -> None:
        """Nothing arrives (and the stream does not end) for ``seconds``."""
        try:
            kind, value, _ = await asyncio.wait_for(self._queue.get(), seconds)
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
    server: HasUrls, token: str | None, protocol: Subprotocol, doc: str, /, **variables: Any
) -> AsyncIterator[Stream]:
    """A websocket of its own with one subscription on it."""
    async with gql_ws(server, token, subprotocol=protocol) as ws:
        assert ws.subprotocol == protocol
        stream = Stream(ws.subscribe(doc, **variables))
        try:
            yield stream
        finally:
            await stream.close()


async def until(check: Any, what: str, within: float = POLL_TIMEOUT, every: float = 0.02) -> Any:
    """Poll the async ``check()`` until it returns something truthy (returned); fail after
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {what}")
        await asyncio.sleep(every)


async def new_token(server: HasUrls, name: str = "tester") -> str:
    """A fresh guest account's bearer token."""
    return (await new_user(server, name))[0]
