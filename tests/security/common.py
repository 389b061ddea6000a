"""Helpers of the security tests: GraphQL documents, callers, subscriptions read with timeouts,
direct database reads, and the server-log scan every security test runs on the servers it used.

Everything goes through a real uvicorn server: queries and mutations with the gql HTTP transport
(or raw httpx where the exact HTTP exchange is the point), subscriptions with the gql websocket
transport on either subprotocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from gql.transport.exceptions import TransportQueryError

from tests.support import dbutil
from tests.support.gql_client import Subprotocol, gql_http, gql_ws
from tests.support.server import TOKEN_SHAPE as SERVER_TOKEN_SHAPE
from tests.support.server import LiveServer

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
PROTOCOLS: list[Subprotocol] = ["graphql-transport-ws", "graphql-ws"]
CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "HANDOFF_NOT_ALLOWED",
    "NOT_TASK_HOLDER",
    "TASK_NOT_CLAIMABLE",
    "CONFLICT",
    "IDEMPOTENCY_KEY_REUSED",
    "RATE_LIMITED",
    "INTERNAL",
}
TIMEOUT = 10.0

# --- documents --------------------------------------------------------------------------------

CREATE_GUEST = "mutation($n: String) { createGuestSession(displayName: $n) { token user { id } } }"
CREATE_ROOM = (
    "mutation($input: CreateChatroomInput!) { createChatroom(input: $input)"
    " { id entryPoint teamRoles lastEventSeq } }"
)
SEND = (
    "mutation($input: SendMessageInput!) { sendMessage(input: $input)"
    " { message { id seq senderRole } task { id status } } }"
)
CLAIM = (
    "mutation($input: ClaimTaskInput!) { claimTask(input: $input)"
    " { success task { id status assignedTo } } }"
)
HANDOFF = (
    "mutation($input: SendHandoffInput!) { sendHandoff(input: $input)"
    " { message { id } newTask { id status assignedTo } } }"
)
CLASSIFY = (
    "mutation($input: ClassifyTaskInput!) { classifyTask(input: $input) { id classification } }"
)
ADD_BACKLOG = "mutation($input: AddBacklogTaskInput!) { addBacklogTask(input: $input) { id } }"
AGENT_TOKEN = (
    "mutation($c: ID!, $r: String!) { createAgentToken(chatroomId: $c, role: $r)"
    " { token session { id scopeChatroomId scopeRole } } }"
)
REQUEST_LOGIN = (
    "mutation($d: String) { requestCliLogin(deviceName: $d) { requestId userCode status } }"
)
APPROVE_LOGIN = "mutation($code: String!) { approveCliLogin(userCode: $code) { status } }"
REVOKE = "mutation($id: ID) { revokeSession(sessionId: $id) { id revokedAt } }"
SESSIONS = (
    "query { sessions { id deviceName createdAt lastUsedAt expiresAt revokedAt current"
    " scopeChatroomId scopeRole } }"
)
ME = "query { me { id displayName } }"
TASKS = "query($c: ID!) { tasks(chatroomId: $c) { id status assignedTo content } }"
ROOM_EVENTS = (
    "subscription($c: ID!, $after: Int) { roomEvents(chatroomId: $c, afterSeq: $after)"
    " { seq kind } }"
)
TASK_AVAILABLE = (
    "subscription($c: ID!, $r: String!) { taskAvailable(chatroomId: $c, role: $r)"
    " { kind resumed task { id status } message { id content } } }"
)
LOGIN_STATUS = (
    "subscription($id: ID!) { cliLoginStatus(requestId: $id) { status token user { id } } }"
)

# --- every token a test saw, so the log scan can look for each one ----------------------------

ISSUED_TOKENS: set[str] = set()
TOKEN_SHAPE = SERVER_TOKEN_SHAPE


def remember(token: str) -> str:
    ISSUED_TOKENS.add(token)
    return token


# --- calls -------------------------------------------------------------------------------------


class Outcome:
    """One call's result: data, or the first error's code and message."""

    def __init__(
        self, data: dict[str, Any] | None, code: str | None = None, message: str = ""
    ) -> None:
        self.data = data
        self.code = code
        self.message = message

    @property
    def ok(self) -> bool:
        return self.data is not None

    def __repr__(self) -> str:
        return f"ok {self.data!r}" if self.ok else f"error {self.code}: {self.message}"


def _error_outcome(exc: TransportQueryError) -> Outcome:
    first = (exc.errors or [{}])[0]
    return Outcome(None, (first.get("extensions") or {}).get("code"), str(first.get("message")))


async def call(server: LiveServer, token: str | None, doc: str, /, **variables: Any) -> Outcome:
    """A query or mutation over HTTP with the gql client."""
    async with gql_http(server, token) as s:
        try:
            data = await s.execute(doc, **variables)
        except TransportQueryError as exc:
            return _error_outcome(exc)
    _remember_tokens_in(data)
    return Outcome(data)


def _remember_tokens_in(data: object) -> None:
    for match in TOKEN_SHAPE.finditer(json.dumps(data)):
        remember(match.group(0))


async def ok(server: LiveServer, token: str | None, doc: str, /, **variables: Any) -> Any:
    """Data of a call that must succeed (its only root field's value)."""
    out = await call(server, token, doc, **variables)
    assert out.ok, f"expected success, got {out!r}"
    assert out.data is not None
    return next(iter(out.data.values()))


async def subscribe_first(
    server: LiveServer,
    token: str | None,
    doc: str,
    /,
    protocol: Subprotocol = "graphql-transport-ws",
    within: float = TIMEOUT,
    **variables: Any,
) -> Outcome:
    """Open a subscription and return its first result (or its error)."""
    async with gql_ws(server, token, subprotocol=protocol) as ws:
        gen = cast(AsyncGenerator[dict[str, Any], None], ws.subscribe(doc, **variables))
        try:
            item = await asyncio.wait_for(gen.__anext__(), within)
        except TransportQueryError as exc:
            return _error_outcome(exc)
        except StopAsyncIteration:
            return Outcome(None, "ENDED", "stream ended without a result")
        except TimeoutError:
            return Outcome(None, "TIMEOUT", f"nothing within {within}s")
        finally:
            await gen.aclose()
    _remember_tokens_in(item)
    return Outcome(item)


# --- accounts and rooms -----------------------------------------------------------------------


async def new_user(server: LiveServer, name: str = "sec") -> tuple[str, str]:
    """(token, user id) of a fresh guest."""
    data = await ok(server, None, CREATE_GUEST, n=name)
    return remember(str(data["token"])), str(data["user"]["id"])


async def new_room(server: LiveServer, token: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "security")
    room: dict[str, Any] = await ok(server, token, CREATE_ROOM, input=fields)
    return room


async def agent_token(server: LiveServer, owner: str, room_id: str, role: str) -> tuple[str, str]:
    """(token, session id) of an agent token for one role of one room."""
    data = await ok(server, owner, AGENT_TOKEN, c=room_id, r=role)
    return remember(str(data["token"])), str(data["session"]["id"])


async def session_ids(server: LiveServer, token: str) -> dict[str, dict[str, Any]]:
    rows = await ok(server, token, SESSIONS)
    return {r["id"]: r for r in rows}


async def current_session(server: LiveServer, token: str) -> str:
    rows = await ok(server, token, SESSIONS)
    (current,) = [r["id"] for r in rows if r["current"]]
    return str(current)


async def device_login(
    server: LiveServer, approver: str, device: str = "laptop"
) -> tuple[str, str]:
    """The whole device flow: (token collected by the 'CLI', login request id)."""
    req = await ok(server, None, REQUEST_LOGIN, d=device)
    async with gql_ws(server, None) as ws:
        stream = Stream(ws.subscribe(LOGIN_STATUS, id=req["requestId"]))
        try:
            first = (await stream.next())["cliLoginStatus"]
            assert first["status"] == "PENDING" and first["token"] is None, first
            approved = await ok(server, approver, APPROVE_LOGIN, code=req["userCode"])
            assert approved["status"] == "APPROVED"
            got = (await stream.next())["cliLoginStatus"]
        finally:
            await stream.close()
    assert got["token"], got
    return remember(str(got["token"])), str(req["requestId"])


async def expire_session(db_url: str, token_session_id: str) -> None:
    """Make a session expired, directly in the database."""
    await dbutil.execute(
        db_url,
        "UPDATE sessions SET expires_at = now() - interval '1 minute' WHERE id = $1",
        uuid.UUID(token_session_id),
    )


# --- subscriptions read with timeouts ---------------------------------------------------------


class StreamEnded(Exception):
    """The server completed the subscription."""


class Stream:
    """One subscription's results, pumped into a queue so every read has a timeout. Each
    queued item carries the monotonic time it arrived (for latency measurements)."""

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

    async def raw(self, within: float = TIMEOUT) -> tuple[str, Any, float]:
        try:
            return await asyncio.wait_for(self._queue.get(), within)
        except TimeoutError:
            raise TimeoutError(f"no result within {within}s") from None

    async def next(self, within: float = TIMEOUT) -> dict[str, Any]:
        kind, value, at = await self.raw(within)
        self.last_at = at
        if kind == "item":
            return value
        if kind == "end":
            raise StreamEnded
        raise value

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@asynccontextmanager
async def subscription(
    server: LiveServer, token: str | None, protocol: Subprotocol, doc: str, /, **variables: Any
) -> AsyncIterator[Stream]:
    """A websocket of its own with one subscription on it."""
    async with gql_ws(server, token, subprotocol=protocol) as ws:
        assert ws.subprotocol == protocol
        stream = Stream(ws.subscribe(doc, **variables))
        try:
            yield stream
        finally:
            await stream.close()


# --- the log scan -----------------------------------------------------------------------------

FORBIDDEN_IN_LOG = ("SELECT ", "INSERT ", "UPDATE ", "asyncpg", "Traceback")
REQUEST_ID = re.compile(r"\(request [0-9a-f]{6,}\)")
# Lines that continue the record above them (a traceback and its chained exceptions).
_EXCEPTION_LINE = re.compile(
    r"^([A-Za-z_]\w*\.)+[A-Za-z_]\w*(:|$)"  # a qualified class: "asyncpg.exceptions.X: ..."
    r"|^[A-Za-z_]\w*(Error|Exception|Fault|Exit|Timeout|Interrupt|Warning|Group)(:|$)"
)
_CONTINUATION = re.compile(
    r"^(\s|$|Traceback \(most recent call last\)|The above exception|During handling"
    r"|\[SQL:|\[parameters:|\(Background on this error)"
)
# Strawberry's graphql-transport-ws handler logs "Exception in worker task" with a traceback
# when a client vanishes while a result is being sent. Only these exceptions are in it.
CLIENT_GONE = {
    "uvicorn.protocols.utils.ClientDisconnected",
    "starlette.websockets.WebSocketDisconnect",
    "strawberry.http.exceptions.WebSocketDisconnected",
}


def log_records(text: str) -> list[list[str]]:
    """The log split into records: a first line, then the lines that continue it (a
    traceback, its chained exceptions, SQLAlchemy's multi-line "[SQL: ...]")."""
    records: list[list[str]] = []
    in_sql = False
    for line in text.splitlines():
        continues = in_sql or bool(_CONTINUATION.match(line) or _EXCEPTION_LINE.match(line))
        in_sql = (in_sql or line.startswith("[SQL:")) and not line.rstrip().endswith("]")
        if continues and records:
            records[-1].append(line)
        else:
            records.append([line])
    return records


def is_client_gone(record: list[str]) -> bool:
    kinds = {line.split(":")[0].strip() for line in record if _EXCEPTION_LINE.match(line)}
    return record[0].startswith("Exception in worker task") and bool(kinds) and kinds <= CLIENT_GONE


def log_problems(
    text: str, tokens: set[str] | None = None, *, tolerate_client_gone: bool = False
) -> list[str]:
    """What must never be in a server log: a token (by shape, or any token a test saw), and
    SQL, driver or traceback text that does not belong to an error logged with a request id.

    The server logs an unexpected error as one record: a first line naming the request id,
    then the traceback. `tolerate_client_gone` skips Strawberry's disconnect noise (which
    reported as a warning by the tests' log scan)."""
    problems: list[str] = []
    for match in TOKEN_SHAPE.finditer(text):
        problems.append(f"token-shaped string in the log: {match.group(0)[:12]}...")
    for token in tokens or ():
        if token in text or token.removeprefix("chr_") in text:
            problems.append(f"an issued token is in the log: {token[:10]}...")
    for record in log_records(text):
        if REQUEST_ID.search(record[0]) or (tolerate_client_gone and is_client_gone(record)):
            continue
        for line in record:
            if any(marker in line for marker in FORBIDDEN_IN_LOG):
                problems.append(
                    f"{line.strip()[:160]!r} (in a record without a request id: "
                    f"{record[0].strip()[:120]!r})"
                )
                break
    return problems


class LogWatch:
    """Servers the security tests started or used; each test's teardown scans what they
    logged since the previous scan."""

    def __init__(self) -> None:
        self._servers: dict[int, tuple[LiveServer, int]] = {}

    def track(self, server: LiveServer) -> LiveServer:
        self._servers.setdefault(id(server), (server, len(server.log_text())))
        return server

    def scan(self) -> tuple[list[str], int]:
        """(problems, how many client-gone records were tolerated) since the last scan."""
        problems: list[str] = []
        client_gone = 0
        for key, (server, offset) in list(self._servers.items()):
            text = server.log_text()
            new = text[offset:]
            problems += log_problems(new, ISSUED_TOKENS, tolerate_client_gone=True)
            client_gone += sum(is_client_gone(r) for r in log_records(new))
            self._servers[key] = (server, len(text))
        return problems, client_gone

    def forget_stopped(self) -> None:
        for key, (server, _) in list(self._servers.items()):
            if not server.running:
                del self._servers[key]


LOG_WATCH = LogWatch()
