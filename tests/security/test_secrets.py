"""Secrets (SPEC §5, anchor W16): tokens are random, stored only as SHA-256 hashes, shown once
and never listed again; device login delivers its token once; sessions slide; and the server
log never holds a token, SQL, driver text or a traceback that is not tied to a request id."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from graphql import build_schema

from tests.security.common import (
    ADD_BACKLOG,
    CLAIM,
    CLASSIFY,
    HANDOFF,
    ISSUED_TOKENS,
    LOGIN_STATUS,
    REQUEST_LOGIN,
    REVOKE,
    ROOM_EVENTS,
    SCHEMA_FILE,
    SEND,
    SESSIONS,
    TASK_AVAILABLE,
    TOKEN_SHAPE,
    agent_token,
    call,
    current_session,
    device_login,
    is_client_gone,
    log_problems,
    log_records,
    new_room,
    new_user,
    ok,
    subscribe_first,
)
from tests.security.conftest import Spawn
from tests.support import dbutil
from tests.support.gql_client import post_graphql
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

TOKEN_FORMAT = re.compile(r"^chr_[A-Za-z0-9_-]{43}$")  # 32 random bytes, url-safe base64


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _mint_all_kinds(server: LiveServer) -> tuple[list[str], str]:
    """A guest token, a device-login token and an agent token: (tokens, room id)."""
    guest, _ = await new_user(server, "secret keeper")
    room = (await new_room(server, guest))["id"]
    cli, _ = await device_login(server, guest, "laptop")
    agent, _ = await agent_token(server, guest, room, "builder")
    return [guest, cli, agent], room


async def test_tokens_are_random_and_stored_only_as_hashes(
    server: LiveServer, module_db: PgDatabase
) -> None:
    tokens, _ = await _mint_all_kinds(server)
    more = [(await new_user(server))[0] for _ in range(10)]
    for token in tokens + more:
        assert TOKEN_FORMAT.match(token), token[:8]
        assert len(base64.urlsafe_b64decode(token[4:] + "=")) == 32  # 256 bits
    assert len(set(tokens + more)) == len(tokens + more)

    # Each token's session holds its SHA-256, and nothing anywhere holds the token.
    hashes = {
        r["token_hash"]
        for r in await dbutil.fetch(module_db.url, "SELECT token_hash FROM sessions")
    }
    for token in tokens + more:
        assert sha256(token) in hashes
    everything = json.dumps(await dbutil.snapshot_tables(module_db.url), default=str)
    assert "chr_" not in everything, "a token (or its prefix) is stored in the database"
    for token in tokens + more:
        assert token[4:] not in everything


async def test_sessions_never_return_a_token(server: LiveServer) -> None:
    sdl = build_schema(SCHEMA_FILE.read_text())
    session_fields = set(sdl.get_type("Session").fields)  # type: ignore[union-attr]
    assert not {f for f in session_fields if "token" in f.lower() or "hash" in f.lower()}

    tokens, _room = await _mint_all_kinds(server)
    owner = tokens[0]
    listed = await ok(server, owner, SESSIONS)
    assert len(listed) == 3 and sum(s["current"] for s in listed) == 1
    assert {s["scopeRole"] for s in listed} == {None, "builder"}
    text = json.dumps(listed)
    assert "chr_" not in text
    for token in tokens:
        assert token not in text and sha256(token) not in text
    # revokeSession and createAgentToken's session answer with the same type: no token there.
    revoked = await ok(server, owner, REVOKE, id=next(s["id"] for s in listed if s["scopeRole"]))
    assert "chr_" not in json.dumps(revoked)


async def test_device_login_delivers_its_token_once(
    server: LiveServer, module_db: PgDatabase
) -> None:
    approver, approver_id = await new_user(server, "approver")
    token, request_id = await device_login(server, approver, "laptop")
    me = await ok(server, token, "query { me { id } }")
    assert me["id"] == approver_id

    # The request id was the secret; it collects nothing a second time.
    again = await subscribe_first(server, None, LOGIN_STATUS, id=request_id)
    assert again.data == {"cliLoginStatus": {"status": "COLLECTED", "token": None, "user": None}}
    row = await dbutil.fetchrow(
        module_db.url, "SELECT * FROM cli_login_requests WHERE id = $1", uuid.UUID(request_id)
    )
    assert row is not None and "chr_" not in json.dumps(dict(row), default=str)

    # The user code is not the secret: it cannot be used to collect.
    req = await ok(server, None, REQUEST_LOGIN, d="other laptop")
    by_code = await subscribe_first(server, None, LOGIN_STATUS, id=req["userCode"])
    assert by_code.code == "NOT_FOUND", by_code

    # A denied request never yields a token.
    denied = await ok(
        server,
        approver,
        "mutation($c: String!) { denyCliLogin(userCode: $c) { status } }",
        c=req["userCode"],
    )
    assert denied["status"] == "DENIED"
    final = await subscribe_first(server, None, LOGIN_STATUS, id=req["requestId"])
    assert final.data == {"cliLoginStatus": {"status": "DENIED", "token": None, "user": None}}
    # ...and a decided request cannot be approved after all.
    late = await call(
        server,
        approver,
        "mutation($c: String!) { approveCliLogin(userCode: $c) { status } }",
        c=req["userCode"],
    )
    assert late.code == "CONFLICT", late


async def test_sessions_slide_at_most_hourly(server: LiveServer, module_db: PgDatabase) -> None:
    token, _ = await new_user(server)
    session = uuid.UUID(await current_session(server, token))

    async def row() -> dict[str, Any]:
        found = await dbutil.fetchrow(
            module_db.url, "SELECT last_used_at, expires_at FROM sessions WHERE id = $1", session
        )
        assert found is not None
        return dict(found)

    fresh = await row()
    lifetime = fresh["expires_at"] - fresh["last_used_at"]
    assert timedelta(days=29, hours=23) < lifetime <= timedelta(days=30, seconds=5)

    # Used within the hour: nothing is written.
    await dbutil.execute(
        module_db.url,
        "UPDATE sessions SET last_used_at = last_used_at - interval '50 minutes',"
        " expires_at = expires_at - interval '50 minutes' WHERE id = $1",
        session,
    )
    before = await row()
    assert (await call(server, token, "query { me { id } }")).ok
    assert await row() == before

    # Unused for more than an hour: the expiry moves to 30 days from now.
    await dbutil.execute(
        module_db.url,
        "UPDATE sessions SET last_used_at = now() - interval '2 hours',"
        " expires_at = now() + interval '3 days' WHERE id = $1",
        session,
    )
    assert (await call(server, token, "query { me { id } }")).ok
    renewed = await row()
    now = datetime.now(renewed["expires_at"].tzinfo)
    assert abs(renewed["last_used_at"] - now) < timedelta(minutes=1)
    assert abs(renewed["expires_at"] - (now + timedelta(days=30))) < timedelta(minutes=1)


# --- the log ------------------------------------------------------------------------------------


async def _workload(server: LiveServer, db_url: str) -> dict[str, Any]:
    """What a day of use looks like, errors included. Returns what the log checks need."""
    seen: dict[str, Any] = {"internal_ids": []}
    owner, _ = await new_user(server, "owner")
    room = (await new_room(server, owner, name="log scan"))["id"]
    cli, _ = await device_login(server, owner, "laptop")
    builder, _ = await agent_token(server, owner, room, "builder")
    reviewer, reviewer_session = await agent_token(server, owner, room, "reviewer")

    # A whole chain, through the agents' tokens.
    sent = await ok(server, cli, SEND, input={"chatroomId": room, "content": "build it"})
    first = await subscribe_first(server, builder, TASK_AVAILABLE, c=room, r="builder")
    assert first.ok, first
    await ok(
        server,
        builder,
        CLAIM,
        input={"chatroomId": room, "taskId": sent["task"]["id"], "role": "builder"},
    )
    await ok(
        server,
        builder,
        CLASSIFY,
        input={"chatroomId": room, "role": "builder", "classification": "NEW_FEATURE"},
    )
    handed = await ok(
        server,
        builder,
        HANDOFF,
        input={
            "chatroomId": room,
            "senderRole": "builder",
            "targetRole": "reviewer",
            "content": "done",
        },
    )
    await ok(
        server,
        reviewer,
        CLAIM,
        input={"chatroomId": room, "taskId": handed["newTask"]["id"], "role": "reviewer"},
    )
    await ok(
        server,
        reviewer,
        HANDOFF,
        input={"chatroomId": room, "senderRole": "reviewer", "targetRole": "user", "content": "ok"},
    )
    await ok(server, owner, ADD_BACKLOG, input={"chatroomId": room, "content": "later"})
    assert (await subscribe_first(server, owner, ROOM_EVENTS, c=room, after=0)).ok

    # Refusals of every kind, several of them carrying tokens in the request.
    refusals = [
        await call(server, "chr_" + secrets.token_urlsafe(32), "query { me { id } }"),
        await call(server, builder, SEND, input={"chatroomId": room, "content": "x"}),
        await call(server, builder, REVOKE, id=await current_session(server, owner)),
        await call(server, owner, SEND, input={"chatroomId": room, "content": ""}),
        await call(server, owner, SEND, input={"chatroomId": room, "content": "a\x00b"}),
        await call(server, owner, SEND, input={"chatroomId": str(uuid.uuid4()), "content": "x"}),
        await call(
            server,
            owner,
            HANDOFF,
            input={
                "chatroomId": room,
                "senderRole": "builder",
                "targetRole": "nobody",
                "content": "x",
            },
        ),
        await call(server, owner, "query { nope }"),
        await call(
            server,
            owner,
            "mutation($c: String!) { approveCliLogin(userCode: $c) { status } }",
            c="'; SELECT * FROM sessions; --",
        ),
    ]
    assert all(not r.ok and r.code not in (None, "INTERNAL") for r in refusals), refusals

    # An unexpected error, if one can be reached without test hooks: a cursor beyond int32.
    cursor = base64.urlsafe_b64encode(b"seq:99999999999").decode()
    raw = await post_graphql(
        server,
        "query($c: ID!, $a: String) { messages(chatroomId: $c, after: $a) { nodes { id } } }",
        {"c": room, "a": cursor},
        token=owner,
    )
    error = (raw.get("errors") or [{}])[0]
    if (error.get("extensions") or {}).get("code") == "INTERNAL":
        request_id = error["extensions"]["requestId"]
        assert request_id in error["message"]
        for word in ("SELECT", "asyncpg", "sqlalchemy", "int32", "Traceback"):
            assert word.lower() not in json.dumps(raw).lower(), word
        seen["internal_ids"].append(request_id)

    # Revocations, and a subscription cut by one.
    await ok(server, owner, REVOKE, id=reviewer_session)
    assert (await call(server, reviewer, "query { me { id } }")).code == "UNAUTHENTICATED"
    await ok(server, cli, REVOKE)
    seen["db_url"] = db_url
    return seen


async def test_a_realistic_workload_leaves_no_secret_in_the_log(spawn: Spawn, db_url: str) -> None:
    server = await spawn(db_url)
    seen = await _workload(server, db_url)
    await server.stop()  # the whole log, shutdown included
    text = server.log_text()

    problems = log_problems(text, ISSUED_TOKENS, tolerate_client_gone=True)
    assert not problems, "\n".join(problems)
    assert not TOKEN_SHAPE.search(text)
    # Every unexpected error is in the log under the id its client was given.
    headers = [record[0] for record in log_records(text)]
    for request_id in seen["internal_ids"]:
        assert any(f"(request {request_id})" in h for h in headers), request_id


async def test_an_agent_restarting_its_wait_leaves_no_traceback_in_the_log(
    spawn: Spawn, db_url: str
) -> None:
    """An agent that restarts closes its taskAvailable subscription and opens a new one at
    once (its task is delivered again, resumed). The old waiter is superseded while its
    client is leaving; that is normal, not an error: the server must not log a traceback
    without a request id ("Exception in worker task" from Strawberry) for it."""
    server = await spawn(db_url)
    owner, _ = await new_user(server)
    room = (await new_room(server, owner))["id"]
    builder, _ = await agent_token(server, owner, room, "builder")
    sent = await ok(server, owner, SEND, input={"chatroomId": room, "content": "work"})
    claim = {"chatroomId": room, "taskId": sent["task"]["id"], "role": "builder"}
    assert (await ok(server, builder, CLAIM, input=claim))["success"]

    for _ in range(20):
        got = await subscribe_first(server, builder, TASK_AVAILABLE, c=room, r="builder")
        assert got.data is not None and got.data["taskAvailable"]["resumed"] is True, got

    assert (await call(server, owner, "query { me { id } }")).ok  # the server is fine
    await server.stop()
    records = [r for r in log_records(server.log_text()) if is_client_gone(r)]
    problems = log_problems(server.log_text(), ISSUED_TOKENS)
    assert not problems, (
        f"{len(records)} 'Exception in worker task' traceback(s) in 20 restarts:\n"
        + "\n".join(problems[:3])
    )
