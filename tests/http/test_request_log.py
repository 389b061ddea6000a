"""CHATROOM_LOG_FORMAT=json: every line one JSON object; one line per operation with its request
id, name, duration and user; no token in any line."""

from __future__ import annotations

import json

import httpx

from tests.conftest import FreshDb, StartServer

GUEST = 'mutation Guest { createGuestSession(displayName: "logs") { token user { id } } }'


async def test_json_log_lines(fresh_db: FreshDb, start_server: StartServer) -> None:
    server = await start_server((await fresh_db()).url, {"CHATROOM_LOG_FORMAT": "json"})
    async with httpx.AsyncClient() as http:
        made = (await http.post(server.http_url, json={"query": GUEST})).json()
        token = made["data"]["createGuestSession"]["token"]
        user_id = made["data"]["createGuestSession"]["user"]["id"]
        auth = {"authorization": f"Bearer {token}"}
        me = await http.post(
            server.http_url, json={"query": "query Who { me { id } }"}, headers=auth
        )
        assert me.json()["data"]["me"]["id"] == user_id
        await http.post(server.http_url, json={"query": "query Nobody { me { id } }"})
        await http.post(server.http_url, json={"query": "{ me {"}, headers=auth)
    await server.stop()

    text = server.log_path.read_text()
    assert token not in text
    lines = [line for line in text.splitlines() if line and not line.startswith("--- ")]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    operations = {r["operation"]: r for r in records if r.get("message") == "operation"}
    assert {"Guest", "Who", "Nobody", "anonymous"} <= set(operations)
    for record in operations.values():
        assert record["request_id"] and record["duration_ms"] >= 0
        assert record["level"] == "info" and record["logger"] == "chatroom.requests"
    assert operations["Who"]["user_id"] == user_id
    assert operations["Who"]["operation_type"] == "query"
    assert "user_id" not in operations["Nobody"]
    assert operations["Nobody"]["error_codes"] == ["UNAUTHENTICATED"]
    assert len({r["request_id"] for r in operations.values()}) == len(operations)
