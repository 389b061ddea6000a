"""The real gql client transports against a live server, with test-friendly helpers.

``gql_http``/``gql_ws`` yield a ``GqlSession`` whose ``execute(doc, **variables)``
returns ``data`` and raises ``TransportQueryError`` on GraphQL errors;
``expect_error`` turns that into ``(code, message)``. ``post_graphql`` skips gql
entirely and returns the raw response body, for tests of exact error shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol

import httpx
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

Subprotocol = Literal["graphql-transport-ws", "graphql-ws"]
TIMEOUT = 10.0
# The servers are on loopback: ignore any HTTP(S)_PROXY in the environment
# (httpx and websockets >= 15 both honour it by default).
NO_PROXY_HTTPX: dict[str, Any] = {"trust_env": False}
NO_PROXY_WS: dict[str, Any] = {"proxy": None}


# The codes SPEC documents for a refused request (extensions.code), and every code a response
# may carry (the closed list of chatroom/resolvers/errors.py).
REFUSAL_CODES = frozenset(
    {
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "BAD_USER_INPUT",
        "HANDOFF_NOT_ALLOWED",
        "NOT_TASK_HOLDER",
        "TASK_NOT_CLAIMABLE",
        "CONFLICT",
        "IDEMPOTENCY_KEY_REUSED",
    }
)
CODES = REFUSAL_CODES | {"RATE_LIMITED", "INTERNAL"}


class HasUrls(Protocol):
    """Anything with the two endpoint URLs (``LiveServer`` fits)."""

    @property
    def http_url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


def bearer(token: str) -> str:
    return f"Bearer {token}"


class GqlSession:
    """A connected gql session; variables are keyword arguments."""

    def __init__(self, session: AsyncClientSession, transport: Any) -> None:
        self.session = session
        self.transport = transport

    async def execute(self, doc: str, /, **variables: Any) -> dict[str, Any]:
        # gql 4: variables go on the GraphQLRequest (execute kwargs are deprecated).
        request = GraphQLRequest(doc, variable_values=variables or None)
        result = await self.session.execute(request)
        assert isinstance(result, dict)
        return result

    async def subscribe(self, doc: str, /, **variables: Any) -> AsyncIterator[dict[str, Any]]:
        request = GraphQLRequest(doc, variable_values=variables or None)
        async for result in self.session.subscribe(request):
            assert isinstance(result, dict)
            yield result

    @property
    def subprotocol(self) -> str | None:
        """The negotiated websocket subprotocol (None over HTTP)."""
        return getattr(self.transport, "subprotocol", None)


@asynccontextmanager
async def gql_http(server: HasUrls, token: str | None = None) -> AsyncIterator[GqlSession]:
    headers = {"Authorization": bearer(token)} if token is not None else {}
    transport = HTTPXAsyncTransport(
        url=server.http_url, headers=headers, timeout=TIMEOUT, **NO_PROXY_HTTPX
    )
    async with Client(transport=transport, execute_timeout=TIMEOUT) as session:
        yield GqlSession(session, transport)


@asynccontextmanager
async def gql_ws(
    server: HasUrls,
    token: str | None = None,
    subprotocol: Subprotocol = "graphql-transport-ws",
) -> AsyncIterator[GqlSession]:
    # Always name the subprotocol: gql's default list puts the legacy
    # "graphql-ws" first, and Strawberry honours the client's order.
    init_payload = {"authorization": bearer(token)} if token is not None else None
    transport = WebsocketsTransport(
        url=server.ws_url,
        subprotocols=[subprotocol],
        init_payload=init_payload,
        connect_args=NO_PROXY_WS,
    )
    async with Client(transport=transport, execute_timeout=TIMEOUT) as session:
        yield GqlSession(session, transport)


def error_of(exc: TransportQueryError) -> tuple[str | None, str]:
    """(extensions.code, message) of the first GraphQL error gql raised."""
    first = (exc.errors or [{}])[0]
    return (first.get("extensions") or {}).get("code"), str(first.get("message", ""))


async def expect_error(aw: Awaitable[Any]) -> tuple[str | None, str]:
    """Await ``aw``, which must fail with a GraphQL error; return (extensions.code, message)."""
    try:
        result = await aw
    except TransportQueryError as exc:
        assert exc.errors, f"TransportQueryError without errors: {exc}"
        return error_of(exc)
    raise AssertionError(f"expected a GraphQL error, got result {result!r}")


async def post_graphql(
    server: HasUrls | str,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """POST one operation with httpx; return the response JSON untouched."""
    url = server if isinstance(server, str) else server.http_url
    headers = {"Authorization": bearer(token)} if token is not None else {}
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    async with httpx.AsyncClient(timeout=TIMEOUT, **NO_PROXY_HTTPX) as client:
        resp = await client.post(url, json=body, headers=headers)
    try:
        data = resp.json()
    except ValueError as exc:
        raise AssertionError(f"non-JSON response {resp.status_code}: {resp.text[:500]}") from exc
    assert isinstance(data, dict), data
    return data
