"""Every limit, crossed through the real server, answers with its documented code (SPEC §6,
docs/security.md): query depth, aliases and tokens; request body size; content, name and team
size; websocket message size; subscriptions per connection; connections per token; the
mutation rate limit; the websocket origin policy; CORS.

Limits that are configurable are tested on a server of their own with a low value."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.security.common import (
    PROTOCOLS,
    ROOM_EVENTS,
    SEND,
    Outcome,
    call,
    new_room,
    new_user,
    ok,
    remember,
)
from tests.security.conftest import Spawn
from tests.support import dbutil
from tests.support.documents import ADD_BACKLOG, CREATE_GUEST, CREATE_ROOM, REQUEST_LOGIN
from tests.support.gql_client import Subprotocol
from tests.support.operations import web_operation
from tests.support.server import LiveServer

MAX_CONTENT = 100_000
MAX_NAME = 100
MAX_ROLES = 12
DEFAULT_BODY = 1 << 20
NO_PROXY: dict[str, Any] = {"trust_env": False}


def limit_error(out: Outcome, *words: str) -> None:
    """BAD_USER_INPUT, with a message that names the limit."""
    assert out.code == "BAD_USER_INPUT", out
    for word in words:
        assert word.lower() in out.message.lower(), (word, out.message)


async def count_rows(db_url: str) -> dict[str, int]:
    tables = ("chatrooms", "messages", "tasks", "room_events", "participants")
    return {t: int(await dbutil.fetchval(db_url, f"SELECT count(*) FROM {t}")) for t in tables}


# --- query shape: depth, aliases, tokens --------------------------------------------------------


async def test_query_depth_over_the_limit_is_bad_user_input(server: LiveServer) -> None:
    token, _ = await new_user(server)
    room = await new_room(server, token)

    def nested(levels: int) -> str:
        inner = "id"
        for _ in range(levels):
            inner = f"task {{ sourceMessage {{ {inner} }} }}"
        return f"query($c: ID!) {{ messages(chatroomId: $c) {{ nodes {{ {inner} }} }} }}"

    # messages > nodes > (task > sourceMessage) * 4 > id: depth 10, the default limit.
    assert (await call(server, token, nested(4), c=room["id"])).ok
    out = await call(server, token, nested(5), c=room["id"])
    limit_error(out, "depth", "10")


async def test_aliases_over_the_limit_are_bad_user_input(server: LiveServer) -> None:
    def aliased(n: int) -> str:
        return "{ " + " ".join(f"a{i}: teams {{ id }}" for i in range(n)) + " }"

    assert (await call(server, None, aliased(30))).ok
    limit_error(await call(server, None, aliased(31)), "alias", "30")


async def test_tokens_over_the_limit_are_bad_user_input(server: LiveServer) -> None:
    token, _ = await new_user(server)
    room = await new_room(server, token)

    def doc(items: int) -> str:  # the list's items plus 24 tokens around them
        statuses = ", ".join(["PENDING"] * items)
        return f"query($c: ID!) {{ tasks(chatroomId: $c, statuses: [{statuses}]) {{ id }} }}"

    assert (await call(server, token, doc(5000 - 24), c=room["id"])).ok
    limit_error(await call(server, token, doc(5000 - 23), c=room["id"]), "token", "5000")


# --- HTTP body ----------------------------------------------------------------------------------


async def _post_raw(server: LiveServer, content: Any, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30.0, **NO_PROXY) as client:
        return await client.post(server.http_url, content=content, headers=headers)


def _body_of_size(size: int) -> bytes:
    """A valid GraphQL request of exactly `size` bytes (the padding is a comment)."""
    head = b'{"query": "{ teams { id } } #'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_request_body_over_the_limit_is_413_bad_user_input(server: LiveServer) -> None:
    at_limit = await _post_raw(
        server, _body_of_size(DEFAULT_BODY), {"content-type": "application/json"}
    )
    assert at_limit.status_code == 200, at_limit.text[:300]
    assert at_limit.json()["data"]["teams"]

    over = await _post_raw(
        server, _body_of_size(DEFAULT_BODY + 1), {"content-type": "application/json"}
    )
    assert over.status_code == 413
    assert over.headers["content-type"].startswith("application/json")
    error = over.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert str(DEFAULT_BODY) in error["message"]


async def test_chunked_body_over_the_limit_is_413(server: LiveServer) -> None:
    """No Content-Length to trust: the body is counted as it arrives."""
    body = _body_of_size(DEFAULT_BODY + 64 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    resp = await _post_raw(server, chunks(), {"content-type": "application/json"})
    assert resp.status_code == 413, resp.text[:300]
    assert resp.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# --- content, names, roles ----------------------------------------------------------------------


async def test_content_over_100k_chars_is_refused_and_writes_nothing(
    server: LiveServer, module_db: Any
) -> None:
    token, _ = await new_user(server)
    room = await new_room(server, token)
    before = await count_rows(module_db.url)
    for doc in (SEND, ADD_BACKLOG):
        # Two-byte characters: the limit counts characters, not bytes.
        out = await call(
            server, token, doc, input={"chatroomId": room["id"], "content": "é" * 100_001}
        )
        limit_error(out, "100000")
    assert await count_rows(module_db.url) == before
    sent = await ok(server, token, SEND, input={"chatroomId": room["id"], "content": "y" * 100_000})
    assert sent["task"]["status"] == "PENDING"


async def test_names_over_100_chars_are_refused(server: LiveServer, module_db: Any) -> None:
    token, _ = await new_user(server)
    before = await count_rows(module_db.url)
    limit_error(await call(server, token, CREATE_ROOM, input={"name": "n" * (MAX_NAME + 1)}), "100")
    assert await count_rows(module_db.url) == before
    room = await ok(server, token, CREATE_ROOM, input={"name": "n" * MAX_NAME})
    rename = web_operation("RenameChatroom")
    limit_error(await call(server, token, rename, id=room["id"], name="é" * (MAX_NAME + 1)), "100")
    assert (await ok(server, token, rename, id=room["id"], name="é" * MAX_NAME))["name"] == (
        "é" * MAX_NAME
    )
    limit_error(await call(server, None, CREATE_GUEST, displayName="g" * (MAX_NAME + 1)), "100")
    limit_error(await call(server, None, REQUEST_LOGIN, d="d" * (MAX_NAME + 1)), "100")


async def test_more_than_12_roles_is_refused(server: LiveServer, module_db: Any) -> None:
    token, _ = await new_user(server)
    before = await count_rows(module_db.url)
    roles = [f"role{i}" for i in range(MAX_ROLES + 1)]
    limit_error(await call(server, token, CREATE_ROOM, input={"roles": roles}), "12")
    assert await count_rows(module_db.url) == before
    assert (await call(server, token, CREATE_ROOM, input={"roles": roles[:MAX_ROLES]})).ok


# --- websockets ---------------------------------------------------------------------------------


def _start(protocol: str, op_id: str, query: str, variables: dict[str, Any]) -> str:
    kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
    return json.dumps(
        {"id": op_id, "type": kind, "payload": {"query": query, "variables": variables}}
    )


async def _raw_ws(
    server: LiveServer,
    protocol: str,
    token: str | None,
    *,
    origin: str | None = None,
    init_type: str = '"connection_init"',
) -> websockets.ClientConnection:
    """A websocket with connection_init sent and acknowledged (raw: close codes are the point)."""
    ws = await websockets.connect(
        server.ws_url,
        subprotocols=[websockets.Subprotocol(protocol)],
        proxy=None,
        origin=websockets.Origin(origin) if origin else None,
    )
    payload = {"authorization": f"Bearer {token}"} if token else {}
    await ws.send('{"type": ' + init_type + ", " + '"payload": ' + json.dumps(payload) + "}")
    ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert ack["type"] == "connection_ack", ack
    return ws


async def _closed_with(ws: websockets.ClientConnection, within: float = 10.0) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_websocket_message_over_the_limit_is_closed_1009(
    spawn: Spawn, db_url: str, protocol: Subprotocol
) -> None:
    server = await spawn(db_url, {"CHATROOM_MAX_WS_MESSAGE_BYTES": "4096"})
    token, _ = await new_user(server)
    room = await new_room(server, token)
    ws = await _raw_ws(server, protocol, token)
    try:
        # Just under the limit passes (a subscription whose padding is a comment)...
        query = ROOM_EVENTS + " #" + "x" * 3000
        await ws.send(_start(protocol, "1", query, {"c": room["id"], "after": 0}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["type"] in ("next", "data"), first
        # ...one byte over closes the connection with 1009 (message too big).
        await ws.send("x" * 4097)
        assert await _closed_with(ws) == 1009
    finally:
        await ws.close()


async def test_websocket_message_over_the_default_limit_is_closed_1009(
    server: LiveServer,
) -> None:
    token, _ = await new_user(server)
    ws = await _raw_ws(server, "graphql-transport-ws", token)
    try:
        await ws.send(_start("graphql-transport-ws", "1", "#" + "x" * DEFAULT_BODY, {}))
        assert await _closed_with(ws) == 1009
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_one_subscription_over_the_per_connection_limit_is_refused(
    spawn: Spawn, db_url: str, protocol: Subprotocol
) -> None:
    server = await spawn(db_url, {"CHATROOM_MAX_SUBSCRIPTIONS_PER_CONNECTION": "2"})
    token, _ = await new_user(server)
    room = await new_room(server, token)
    ws = await _raw_ws(server, protocol, token)
    try:
        for op in ("1", "2", "3"):
            await ws.send(_start(protocol, op, ROOM_EVENTS, {"c": room["id"], "after": 0}))
        by_id: dict[str, list[dict[str, Any]]] = {}
        # Wait for an event on each accepted subscription and the refusal's end ("complete").
        while not (
            by_id.get("1")
            and by_id.get("2")
            and any(m["type"] == "complete" for m in by_id.get("3", []))
        ):
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            by_id.setdefault(msg["id"], []).append(msg)
        assert {m["type"] for m in by_id["1"]} <= {"next", "data"}, by_id
        assert {m["type"] for m in by_id["2"]} <= {"next", "data"}, by_id
        # The refusal is an execution error: an "error" message, or a result carrying errors
        # (graphql-transport-ws "next" / graphql-ws "data") followed by "complete".
        refused = by_id["3"][0]
        assert refused["type"] in ("error", "next", "data"), refused
        payload = refused["payload"]
        if isinstance(payload, dict) and "errors" in payload:
            assert payload.get("data") is None, refused
            payload = payload["errors"]
        error = payload[0] if isinstance(payload, list) else payload
        assert "limit" in error["message"].lower(), error
        # A refusal is an error like any other: it carries a code from the closed list (§6).
        code = (error.get("extensions") or {}).get("code")
        assert code in ("BAD_USER_INPUT", "RATE_LIMITED"), (
            f"the subscription-limit error has no documented code: {error}"
        )
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_one_connection_over_the_per_token_limit_is_closed_4429(
    spawn: Spawn, db_url: str, protocol: Subprotocol
) -> None:
    server = await spawn(db_url, {"CHATROOM_MAX_CONNECTIONS_PER_TOKEN": "2"})
    token, _ = await new_user(server)
    other, _ = await new_user(server)
    first = await _raw_ws(server, protocol, token)
    second = await _raw_ws(server, protocol, token)
    try:
        with pytest.raises(ConnectionClosed) as refused:
            await _raw_ws(server, protocol, token)
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4429
        # Another token has its own count.
        await (await _raw_ws(server, protocol, other)).close()
        # A closed connection gives its slot back.
        await first.close()
        await asyncio.sleep(0.2)
        third = await _raw_ws(server, protocol, token)
        await third.close()
    finally:
        await first.close()
        await second.close()


async def test_connection_limit_cannot_be_dodged_with_an_escaped_init_message(
    spawn: Spawn, db_url: str
) -> None:
    """`connection\\u005finit` is the same JSON string as `connection_init`: Strawberry accepts
    it, so the per-token connection count must see it too."""
    server = await spawn(db_url, {"CHATROOM_MAX_CONNECTIONS_PER_TOKEN": "2"})
    token, _ = await new_user(server)
    room = await new_room(server, token)
    escaped = '"connection\\u005finit"'
    opened: list[websockets.ClientConnection] = []
    refused = 0
    try:
        for _ in range(4):
            try:
                ws = await _raw_ws(server, "graphql-transport-ws", token, init_type=escaped)
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 4429
                refused += 1
                continue
            opened.append(ws)
            await ws.send(_start("graphql-transport-ws", "1", ROOM_EVENTS, {"c": room["id"]}))
        assert len(opened) <= 2, (
            f"{len(opened)} connections open for one token (limit 2): the init message was "
            "not recognised by the connection counter"
        )
        assert refused == 2
    finally:
        for ws in opened:
            await ws.close()


# --- rate limit ---------------------------------------------------------------------------------

RATE_ENV = {"CHATROOM_MUTATIONS_PER_SECOND": "0.1", "CHATROOM_MUTATION_BURST": "3"}


async def test_mutations_over_the_rate_limit_are_refused_and_write_nothing(
    spawn: Spawn, db_url: str
) -> None:
    server = await spawn(db_url, RATE_ENV)
    token, _ = await new_user(server)  # the address's bucket, not the token's
    room = await new_room(server, token)  # 1 of the token's 3
    for i in range(2):  # 2 and 3
        await ok(server, token, SEND, input={"chatroomId": room["id"], "content": f"m{i}"})
    before = await dbutil.snapshot_tables(db_url)
    out = await call(server, token, SEND, input={"chatroomId": room["id"], "content": "over"})
    assert out.code == "RATE_LIMITED", out
    assert "retry" in out.message.lower()
    assert await dbutil.snapshot_tables(db_url) == before, "the refused call wrote something"
    # Reads are not limited, and another token has its own bucket.
    assert (await call(server, token, "query { me { id } }")).ok
    other, _ = await new_user(server)
    assert (await call(server, other, CREATE_ROOM, input={})).ok


async def test_guest_sign_ups_are_rate_limited_per_address(spawn: Spawn, db_url: str) -> None:
    server = await spawn(db_url, RATE_ENV)
    guest = "mutation { createGuestSession { token } }"
    outcomes = [await call(server, None, guest) for _ in range(4)]
    assert [o.ok for o in outcomes] == [True, True, True, False], outcomes
    assert outcomes[-1].code == "RATE_LIMITED"
    for o in outcomes[:3]:
        remember(o.data["createGuestSession"]["token"])  # type: ignore[index]


async def test_a_made_up_bearer_token_does_not_reset_the_address_rate_limit(
    spawn: Spawn, db_url: str
) -> None:
    """createGuestSession and requestCliLogin need no token, so they are limited per address.
    A client must not get a fresh bucket by sending a different made-up token each time."""
    server = await spawn(db_url, RATE_ENV)
    guest = "mutation { createGuestSession { token } }"
    created = 0
    for _ in range(10):
        out = await call(server, "chr_" + secrets.token_urlsafe(32), guest)
        if out.ok:
            created += 1
            remember(out.data["createGuestSession"]["token"])  # type: ignore[index]
        else:
            assert out.code == "RATE_LIMITED", out
    users = await dbutil.fetchval(db_url, "SELECT count(*) FROM users")
    assert created <= 3, (
        f"{created} guest accounts in a row from one address ({users} users): each made-up "
        "bearer token got a rate-limit bucket of its own"
    )


# --- websocket origin policy --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cross_origin_websockets_are_refused(server: LiveServer, protocol: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await _raw_ws(server, protocol, None, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    # Same origin (the host the page was served from) and no Origin (not a browser) pass.
    await (await _raw_ws(server, protocol, None, origin=f"http://127.0.0.1:{server.port}")).close()
    await (await _raw_ws(server, protocol, None)).close()


async def test_allowed_origins_admit_the_configured_origin_only(spawn: Spawn, db_url: str) -> None:
    server = await spawn(db_url, {"CHATROOM_ALLOWED_ORIGINS": "https://app.example"})
    ws = await _raw_ws(server, "graphql-transport-ws", None, origin="https://app.example")
    await ws.close()
    with pytest.raises(InvalidStatus) as refused:
        await _raw_ws(server, "graphql-transport-ws", None, origin="https://evil.example")
    assert refused.value.response.status_code == 403


# --- CORS ---------------------------------------------------------------------------------------


async def _cors(server: LiveServer, origin: str) -> tuple[httpx.Response, httpx.Response]:
    async with httpx.AsyncClient(timeout=10.0, **NO_PROXY) as client:
        preflight = await client.options(
            server.http_url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        post = await client.post(
            server.http_url, json={"query": "{ teams { id } }"}, headers={"Origin": origin}
        )
    return preflight, post


async def test_cors_is_off_by_default(server: LiveServer) -> None:
    preflight, post = await _cors(server, "https://app.example")
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in post.headers
    assert post.status_code == 200  # the server answers; the browser withholds it


async def test_cors_origins_are_allowed_when_configured(spawn: Spawn, db_url: str) -> None:
    server = await spawn(db_url, {"CHATROOM_CORS_ORIGINS": "https://app.example"})
    preflight, post = await _cors(server, "https://app.example")
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert post.headers["access-control-allow-origin"] == "https://app.example"
    preflight, post = await _cors(server, "https://evil.example")
    assert "access-control-allow-origin" not in post.headers
    assert preflight.headers.get("access-control-allow-origin") != "https://evil.example"
