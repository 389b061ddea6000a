"""Helpers of the security tests: calls that answer an ``Outcome`` (and remember every token
they saw), accounts, rooms and tokens, direct database writes, and the server-log scan every
security test runs on the servers it used.

Everything goes through a real uvicorn server: queries and mutations with the gql HTTP transport
(or raw httpx where the exact HTTP exchange is the point), subscriptions with the gql websocket
transport on either subprotocol. The documents are ``tests.support.documents``; the security
suites (and the access matrix, the accounts tests) import them from here too.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncGenerator
from typing import Any, cast

from gql.transport.exceptions import TransportQueryError

from tests.support import dbutil
from tests.support.api import DELIVERY_TIMEOUT, Stream, StreamEnded, subscription
from tests.support.documents import (
    ADD_BACKLOG,
    AGENT_TOKEN,
    APPROVE_LOGIN,
    CLAIM,
    CLASSIFY,
    CREATE_GUEST,
    CREATE_ROOM,
    HANDOFF,
    LOGIN_STATUS,
    ME,
    REQUEST_LOGIN,
    REVOKE,
    ROOM_EVENTS,
    SEND,
    SESSIONS,
    TASK_AVAILABLE,
    TASKS,
)
from tests.support.gql_client import CODES, Subprotocol, error_of, gql_http, gql_ws
from tests.support.operations import SCHEMA_FILE
from tests.support.server import TOKEN_SHAPE as SERVER_TOKEN_SHAPE
from tests.support.server import LiveServer

# Imported from here by the security tests, the access matrix and the accounts tests.
__all__ = [
    "ADD_BACKLOG",
    "CLAIM",
    "CLASSIFY",
    "CODES",
    "HANDOFF",
    "LOGIN_STATUS",
    "ME",
    "REQUEST_LOGIN",
    "REVOKE",
    "ROOM_EVENTS",
    "SCHEMA_FILE",
    "SEND",
    "SESSIONS",
    "TASKS",
    "TASK_AVAILABLE",
    "Stream",
    "StreamEnded",
    "subscription",
]

PROTOCOLS: list[Subprotocol] = ["graphql-transport-ws", "graphql-ws"]
TIMEOUT = DELIVERY_TIMEOUT

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
    return Outcome(None, *error_of(exc))


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
    data = await ok(server, None, CREATE_GUEST, displayName=name)
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
