"""The live-server fixtures and client helpers against the real app (no domain schema assumed)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol as WsSubprotocol

from tests.support.gql_client import expect_error, gql_http, gql_ws, post_graphql
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer


async def test_live_server_answers_http_and_ws(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.get(f"{live_server.base_url}/healthz")).status_code == 200
    async with gql_http(live_server) as session:
        assert await session.execute("{ __typename }") == {"__typename": "Query"}
    async with gql_ws(live_server) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        assert await ws.execute("{ __typename }") == {"__typename": "Query"}


async def test_error_helpers(live_server: LiveServer) -> None:
    raw = await post_graphql(live_server, "{ noSuchField }")
    assert "noSuchField" in raw["errors"][0]["message"]
    async with gql_http(live_server) as session:
        _code, message = await expect_error(session.execute("{ noSuchField }"))
    assert "noSuchField" in message
    with pytest.raises(AssertionError, match="expected a GraphQL error"):
        async with gql_http(live_server) as session:
            await expect_error(session.execute("{ __typename }"))


async def test_kill_and_restart_on_same_port(db: PgDatabase, start_server) -> None:
    # db before start_server: the server is stopped before its database is dropped.
    server = await start_server(db.url)
    port, pid = server.port, server.pid
    await server.kill()
    with pytest.raises(httpx.ConnectError):  # nothing keeps the port listening
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.get(f"{server.base_url}/healthz")
    await server.restart()
    assert (server.port, server.running) == (port, True)
    assert server.pid != pid
    async with gql_http(server) as session:
        assert await session.execute("{ __typename }") == {"__typename": "Query"}
    assert server.log_text().count("--- start") == 2


async def _declines_compression(ws_url: str) -> None:
    """A client that offers permessage-deflate (websockets and gql do by default) is answered
    without it, and the connection then works."""
    async with websockets.connect(
        ws_url, subprotocols=[WsSubprotocol("graphql-transport-ws")], compression="deflate"
    ) as ws:
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"


async def test_the_test_server_runs_with_the_products_uvicorn_settings(
    live_server: LiveServer,
) -> None:
    await _declines_compression(live_server.ws_url)


class ChatroomServe(LiveServer):
    """`chatroom serve` itself, as a user starts it (LiveServer runs uvicorn's command line)."""

    def command(self, listen: list[str]) -> list[str]:
        return [str(Path(sys.executable).with_name("chatroom")), "serve", *listen]


async def test_chatroom_serve_declines_websocket_compression(db: PgDatabase, tmp_path) -> None:
    """`chatroom serve` applies UVICORN_SETTINGS too, not only the tests' uvicorn flags."""
    server = ChatroomServe(db.url, tmp_path / "serve.log", bind_fd=False)
    await server.start()
    try:
        await _declines_compression(server.ws_url)
    finally:
        await server.stop()
