"""Trusted documents (CHATROOM_TRUSTED_DOCUMENTS=off|allow|only), against live servers: a
registered document runs by `documentId`; in `only` mode anything else is refused with a coded
error over HTTP and websockets and changes nothing, while the real CLI works unchanged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets

from chatroom.cli.client import operation
from chatroom.schema import trusted_documents
from tests.cli.support import Cli, logged_in
from tests.conftest import FreshDb, StartServer
from tests.support import dbutil

GUEST_TEXT = operation("CreateGuestSession")
# A document of our own making, not a shipped one: allowed unless the mode is `only`.
CUSTOM_GUEST = 'mutation Mine { createGuestSession(displayName: "custom") { token } }'
RESPONSE_JSON = "application/graphql-response+json"


def _errors(response: httpx.Response) -> list[dict[str, object]]:
    errors = response.json().get("errors") or []
    assert isinstance(errors, list)
    return errors


def _code(response: httpx.Response) -> object:
    errors = _errors(response)
    assert errors, response.text
    extensions = errors[0].get("extensions")
    assert isinstance(extensions, dict)
    return extensions.get("code")


def test_every_shipped_document_is_registered_by_its_text_and_by_gqls_printed_form() -> None:
    from graphql import parse, print_ast

    registry = trusted_documents.registry()
    files = [p for d in trusted_documents.DOCUMENT_DIRS for p in d.glob("*.graphql")]
    assert len(files) >= 20, "the CLI alone ships more documents than this"
    for path in files:
        text = trusted_documents.document_text(path)  # the file, and the fragments it spreads
        assert registry[trusted_documents.sha256(text)] == text
        assert registry[trusted_documents.sha256(print_ast(parse(text)))] == text


async def test_allow_runs_a_document_by_id_and_any_text(
    fresh_db: FreshDb, start_server: StartServer
) -> None:
    db = await fresh_db()
    server = await start_server(db.url)  # allow is the default
    guest_id = trusted_documents.document_id(GUEST_TEXT)
    async with httpx.AsyncClient() as http:
        by_id = await http.post(
            server.http_url, json={"documentId": guest_id, "variables": {"displayName": "by id"}}
        )
        token = by_id.json()["data"]["createGuestSession"]["token"]
        assert token.startswith("chr_")
        # GET with a bare hex id (a query document: GET runs queries only).
        me_id = trusted_documents.sha256(operation("Me")).upper()  # hex in any case
        got = await http.get(
            server.http_url,
            params={"documentId": me_id},
            headers={"authorization": f"Bearer {token}", "accept": "application/json"},
        )
        assert got.json()["data"]["me"]["displayName"] == "by id", got.text
        custom = await http.post(server.http_url, json={"query": CUSTOM_GUEST})
        assert custom.json()["data"]["createGuestSession"]["token"]
        users_before = await dbutil.fetchval(db.url, "select count(*) from users")
        unknown = await http.post(
            server.http_url,
            json={"documentId": "sha256:" + "0" * 64},
            headers={"accept": RESPONSE_JSON},
        )
        assert unknown.status_code == 400
        assert _code(unknown) == "NOT_FOUND"
        assert "data" not in unknown.json()
        assert "sha256:" in str(_errors(unknown)[0]["message"])
        assert await dbutil.fetchval(db.url, "select count(*) from users") == users_before


async def test_off_refuses_document_ids_and_runs_text(
    fresh_db: FreshDb, start_server: StartServer, tmp_path: Path
) -> None:
    db = await fresh_db()
    server = await start_server(db.url, {"CHATROOM_TRUSTED_DOCUMENTS": "off"})
    async with httpx.AsyncClient() as http:
        by_id = await http.post(
            server.http_url, json={"documentId": trusted_documents.document_id(GUEST_TEXT)}
        )
        assert _code(by_id) == "BAD_USER_INPUT"
        assert "CHATROOM_TRUSTED_DOCUMENTS=off" in str(_errors(by_id)[0]["message"])
        assert await dbutil.fetchval(db.url, "select count(*) from users") == 0
        custom = await http.post(server.http_url, json={"query": CUSTOM_GUEST})
        assert custom.json()["data"]["createGuestSession"]["token"]
    # The CLI sends text, never ids: unchanged here too.
    cli: Cli = await logged_in(server, tmp_path / "config")
    room = (await cli.run("create", "--team", "solo", "--json")).ok().json()["room_id"]
    assert (await cli.run("list", "--json")).ok().json()["rooms"][0]["room_id"] == room


async def _ws_subscribe(ws_url: str, token: str, query: str) -> dict[str, object]:
    """The first message after subscribing over graphql-transport-ws."""
    async with websockets.connect(
        ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], proxy=None
    ) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert isinstance(answer, dict)
        return answer


async def test_only_refuses_other_documents_and_the_cli_works_unchanged(
    fresh_db: FreshDb, start_server: StartServer, tmp_path: Path
) -> None:
    db = await fresh_db()
    server = await start_server(db.url, {"CHATROOM_TRUSTED_DOCUMENTS": "only"})
    async with httpx.AsyncClient() as http:
        custom = await http.post(
            server.http_url, json={"query": CUSTOM_GUEST}, headers={"accept": RESPONSE_JSON}
        )
        assert custom.status_code == 400
        assert _code(custom) == "FORBIDDEN"
        assert "CHATROOM_TRUSTED_DOCUMENTS=only" in str(_errors(custom)[0]["message"])
        assert await dbutil.fetchval(db.url, "select count(*) from users") == 0
        # The shipped document runs as text (what gql sends) and by id.
        as_text = await http.post(
            server.http_url, json={"query": GUEST_TEXT, "variables": {"displayName": "text"}}
        )
        token = as_text.json()["data"]["createGuestSession"]["token"]
        by_id = await http.post(
            server.http_url, json={"documentId": trusted_documents.document_id(GUEST_TEXT)}
        )
        assert by_id.json()["data"]["createGuestSession"]["token"]

    refused = await _ws_subscribe(
        server.ws_url, token, 'subscription Mine { roomEvents(chatroomId: "x") { seq } }'
    )
    assert refused["type"] == "error", refused
    payload = refused["payload"]
    assert isinstance(payload, list)
    assert payload[0]["extensions"]["code"] == "FORBIDDEN"

    # The real CLI, unchanged: log in, create, send, wait (a websocket subscription), hand off.
    cli: Cli = await logged_in(server, tmp_path / "config")
    room = (await cli.run("create", "--team", "solo", "--json")).ok().json()["room_id"]
    (await cli.run("send", room, "--message", "Write the changelog.")).ok()
    delivery = (await cli.run("wait-for-message", room, "--role", "solo", "--json")).ok().json()
    assert delivery["event"] == "task"
    done = await cli.run(
        "task-complete",
        room,
        "--role",
        "solo",
        "--next-role",
        "user",
        "--json",
        "--message",
        "Changelog written.",
    )
    assert done.ok().json()["event"] == "handed_off"
    assert (await cli.run("list", "--json")).ok().json()["rooms"][0]["room_id"] == room
