"""The live-server fixtures and client helpers against the real app (no domain schema assumed)."""

from __future__ import annotations

import httpx
import pytest

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
