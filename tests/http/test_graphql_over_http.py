"""GraphQL over HTTP as its spec says: the graphql-http audit suite (every MUST and SHOULD) run
for real against a live server, and the media types our own clients rely on."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx

from chatroom.schema.http_media import GRAPHQL_RESPONSE_JSON, response_media_type
from tests.support.node_tools import node_module
from tests.support.server import LiveServer

AUDIT_SCRIPT = Path(__file__).with_name("audit.mjs")


async def test_every_graphql_http_audit_passes(live_server: LiveServer) -> None:
    modules = node_module("graphql-http").parent
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(AUDIT_SCRIPT),
        live_server.http_url,
        env={**os.environ, "NODE_TOOLS_MODULES": str(modules)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    results = json.loads(out)
    assert len(results) >= 50, results  # the suite ran, not an empty list
    failed = [f"{r['id']} {r['name']}: {r['reason']}" for r in results if r["status"] != "ok"]
    assert not failed, "\n".join(failed)
    assert any("SHOULD" in r["name"] for r in results)


async def test_request_errors_by_media_type(live_server: LiveServer) -> None:
    """A document that does not parse: 400 without data under the spec's type; 200 with
    data null under plain JSON, which gql and older clients ask for."""
    async with httpx.AsyncClient() as client:
        spec = await client.post(
            live_server.http_url,
            json={"query": "{ me {"},
            headers={"accept": GRAPHQL_RESPONSE_JSON},
        )
        assert spec.status_code == 400
        assert spec.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
        assert "data" not in spec.json() and spec.json()["errors"]

        legacy = await client.post(
            live_server.http_url, json={"query": "{ me {"}, headers={"accept": "application/json"}
        )
        assert legacy.status_code == 200
        assert legacy.headers["content-type"].startswith("application/json")
        assert legacy.json()["data"] is None and legacy.json()["errors"]

        # An execution error is a result, not a request error: 200 with its data entry.
        executed = await client.post(
            live_server.http_url,
            json={"query": "{ me { id } }"},
            headers={"accept": GRAPHQL_RESPONSE_JSON},
        )
        assert executed.status_code == 200
        body = executed.json()
        assert "data" in body and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_accept_negotiation() -> None:
    assert response_media_type(None) == "application/json"
    assert response_media_type("*/*") == "application/json"
    assert response_media_type(GRAPHQL_RESPONSE_JSON) == GRAPHQL_RESPONSE_JSON
    assert (
        response_media_type(f"{GRAPHQL_RESPONSE_JSON}, application/json") == GRAPHQL_RESPONSE_JSON
    )
    assert response_media_type(f"application/json, {GRAPHQL_RESPONSE_JSON}") == "application/json"
    assert (
        response_media_type(f"application/json;q=0.5, {GRAPHQL_RESPONSE_JSON};q=0.9")
        == GRAPHQL_RESPONSE_JSON
    )
    assert response_media_type(f"{GRAPHQL_RESPONSE_JSON};q=0") == "application/json"
