"""Accounts over the real server: signup modes, sign-in, the guest upgrade, throttling, and no
password ever echoed or logged."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.accounts import passwords
from tests.support import dbutil
from tests.support.gql_client import post_graphql

SIGN_UP = """mutation($u: String!, $p: String!, $c: String) {
  signUp(input: {username: $u, password: $p, inviteCode: $c}) { token user { id displayName } } }"""
SIGN_IN = """mutation($u: String!, $p: String!) {
  signIn(input: {username: $u, password: $p}) { token user { id displayName } } }"""
INVITE = "mutation { createSignupInvite { code expiresAt } }"
GUEST = 'mutation { createGuestSession(displayName: "g") { token user { id } } }'
UPGRADE = """mutation($u: String!, $p: String!) {
  upgradeGuest(input: {username: $u, password: $p}) { id displayName } }"""
ROOM = 'mutation { createChatroom(input: {name: "kept"}) { id } }'
ME_ROOMS = "{ chatrooms { id } }"
PASSWORD = passwords.ACCOUNT


def code_of(body: dict[str, Any]) -> str | None:
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"]


async def test_open_signup_first_account_is_admin_and_signs_in(start_server, db_url) -> None:
    server = await start_server(db_url, {"CHATROOM_SIGNUP": "open"})
    first = await post_graphql(server, SIGN_UP, {"u": "Ada", "p": PASSWORD})
    assert first["data"]["signUp"]["token"].startswith("chr_")
    assert first["data"]["signUp"]["user"]["displayName"] == "Ada"
    second = await post_graphql(server, SIGN_UP, {"u": "bob", "p": PASSWORD})
    assert second["data"]["signUp"]["token"]
    admins = await dbutil.fetch(db_url, "SELECT username FROM accounts WHERE is_admin")
    assert [r["username"] for r in admins] == ["Ada"]
    # Same name in another case is the same account.
    assert code_of(await post_graphql(server, SIGN_UP, {"u": "ADA", "p": PASSWORD})) == (
        "BAD_USER_INPUT"
    )
    signed = await post_graphql(server, SIGN_IN, {"u": "ada", "p": PASSWORD})
    assert signed["data"]["signIn"]["user"]["id"] == first["data"]["signUp"]["user"]["id"]
    # Only the admin mints signup invites.
    bob = second["data"]["signUp"]["token"]
    assert code_of(await post_graphql(server, INVITE, token=bob)) == "FORBIDDEN"
    hashes = await dbutil.fetch(db_url, "SELECT password_hash FROM accounts")
    assert all(h["password_hash"].startswith("$argon2id$") for h in hashes)
    assert PASSWORD not in server.log_text()


async def test_invite_mode_needs_an_unused_code(start_server, db_url) -> None:
    server = await start_server(db_url, {"CHATROOM_SIGNUP": "invite"})
    admin = (await post_graphql(server, SIGN_UP, {"u": "admin", "p": PASSWORD}))["data"]
    token = admin["signUp"]["token"]
    assert code_of(await post_graphql(server, SIGN_UP, {"u": "nocode", "p": PASSWORD})) == (
        "FORBIDDEN"
    )
    assert (
        code_of(
            await post_graphql(server, SIGN_UP, {"u": "badcode", "p": PASSWORD, "c": "chs_nope"})
        )
        == "FORBIDDEN"
    )
    code = (await post_graphql(server, INVITE, token=token))["data"]["createSignupInvite"]["code"]
    stored = await dbutil.fetch(db_url, "SELECT code_hash FROM signup_invites")
    assert code not in {r["code_hash"] for r in stored}
    ok = await post_graphql(server, SIGN_UP, {"u": "invited", "p": PASSWORD, "c": code})
    assert ok["data"]["signUp"]["token"]
    again = await post_graphql(server, SIGN_UP, {"u": "twice", "p": PASSWORD, "c": code})
    assert code_of(again) == "FORBIDDEN"
    names = await dbutil.fetch(db_url, "SELECT username FROM accounts ORDER BY username")
    assert [r["username"] for r in names] == ["admin", "invited"]


async def test_closed_mode_allows_only_the_first_account(start_server, db_url) -> None:
    server = await start_server(db_url, {"CHATROOM_SIGNUP": "closed"})
    assert (await post_graphql(server, SIGN_UP, {"u": "root", "p": PASSWORD}))["data"]
    refused = await post_graphql(server, SIGN_UP, {"u": "late", "p": PASSWORD})
    assert code_of(refused) == "FORBIDDEN"
    assert "closed" in refused["errors"][0]["message"]
    assert len(await dbutil.fetch(db_url, "SELECT 1 FROM accounts")) == 1


async def test_a_guest_upgrades_and_keeps_its_rooms(start_server, db_url) -> None:
    server = await start_server(db_url, {"CHATROOM_SIGNUP": "open"})
    guest = (await post_graphql(server, GUEST))["data"]["createGuestSession"]
    room = (await post_graphql(server, ROOM, token=guest["token"]))["data"]["createChatroom"]
    up = await post_graphql(server, UPGRADE, {"u": "grace", "p": PASSWORD}, token=guest["token"])
    assert up["data"]["upgradeGuest"]["id"] == guest["user"]["id"]
    signed = (await post_graphql(server, SIGN_IN, {"u": "grace", "p": PASSWORD}))["data"]
    rooms = await post_graphql(server, ME_ROOMS, token=signed["signIn"]["token"])
    assert room["id"] in [r["id"] for r in rooms["data"]["chatrooms"]]
    again = await post_graphql(
        server, UPGRADE, {"u": "grace2", "p": PASSWORD}, token=guest["token"]
    )
    assert code_of(again) == "BAD_USER_INPUT"


async def test_wrong_password_and_unknown_user_answer_alike_and_are_throttled(
    start_server, db_url
) -> None:
    server = await start_server(db_url, {"CHATROOM_SIGNUP": "open"})
    await post_graphql(server, SIGN_UP, {"u": "carol", "p": PASSWORD})
    started = time.monotonic()
    wrong = await post_graphql(server, SIGN_IN, {"u": "carol", "p": passwords.WRONG[0]})
    wrong_time = time.monotonic() - started
    started = time.monotonic()
    unknown = await post_graphql(server, SIGN_IN, {"u": "nobody", "p": passwords.WRONG[0]})
    unknown_time = time.monotonic() - started
    assert wrong["errors"][0]["message"] == unknown["errors"][0]["message"]
    assert code_of(wrong) == code_of(unknown) == "UNAUTHENTICATED"
    assert passwords.WRONG[0] not in str(wrong) + server.log_text()
    # Both did the hashing work (an unknown name is verified against a dummy hash).
    assert unknown_time > wrong_time / 4, (wrong_time, unknown_time)
    for _ in range(8):
        await post_graphql(server, SIGN_IN, {"u": "carol", "p": passwords.WRONG[1]})
    # Ten failures for this account: even the right password is refused until the window ends.
    limited = await post_graphql(server, SIGN_IN, {"u": "carol", "p": PASSWORD})
    assert code_of(limited) == "RATE_LIMITED"
    assert PASSWORD not in server.log_text()


async def test_bad_input_changes_nothing(start_server, db_url) -> None:
    server = await start_server(db_url, {"CHATROOM_SIGNUP": "open"})
    short = await post_graphql(server, SIGN_UP, {"u": "dave", "p": "short"})
    assert code_of(short) == "BAD_USER_INPUT"
    assert "short" not in short["errors"][0]["message"]
    assert code_of(await post_graphql(server, SIGN_UP, {"u": "a b", "p": PASSWORD})) == (
        "BAD_USER_INPUT"
    )
    # graphql-core quotes a rejected input object back: never with the password in it.
    doc = "mutation($i: SignUpInput!) { signUp(input: $i) { token } }"
    for extra in ({"admin": True}, {"inviteCode": 5}):
        refused = await post_graphql(
            server, doc, {"i": {"username": "dave", "password": PASSWORD, **extra}}
        )
        assert code_of(refused) == "BAD_USER_INPUT" and PASSWORD not in str(refused), refused
    literal = f'mutation {{ signIn(input: {{username: "dave", password: "{PASSWORD}", x: 1}})'
    refused = await post_graphql(server, literal + " { token } }")
    assert code_of(refused) == "BAD_USER_INPUT" and PASSWORD not in str(refused), refused
    assert await dbutil.fetch(db_url, "SELECT 1 FROM accounts") == []
    assert await dbutil.fetch(db_url, "SELECT 1 FROM users") == []


async def _sign_in_from(server: Any, address: str, username: str, password: str) -> Any:
    """A sign-in from another client address, as a trusted proxy on loopback reports it
    (uvicorn takes X-Forwarded-For from 127.0.0.1, its default forwarded-allow-ips)."""
    body = {"query": SIGN_IN, "variables": {"u": username, "p": password}}
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        response = await client.post(
            server.http_url, json=body, headers={"X-Forwarded-For": address}
        )
    return response.json()


async def test_sign_in_is_throttled_per_address_and_per_account(start_server, db_url) -> None:
    server = await start_server(db_url, {"CHATROOM_SIGNUP": "open"})
    for name in ("gina", "hugo"):
        await post_graphql(server, SIGN_UP, {"u": name, "p": PASSWORD})
    # Per address: ten failures from one address, each for another (unknown) username...
    for n in range(10):
        failed = await _sign_in_from(server, "203.0.113.7", f"nobody{n}", passwords.WRONG[2])
        assert code_of(failed) == "UNAUTHENTICATED"
    # ...and that address is refused even with gina's right password; gina is not locked out.
    assert code_of(await _sign_in_from(server, "203.0.113.7", "gina", PASSWORD)) == ("RATE_LIMITED")
    ok = await _sign_in_from(server, "203.0.113.8", "gina", PASSWORD)
    assert ok["data"]["signIn"]["token"], ok
    # Per account: ten failures for hugo, each from another address, lock hugo everywhere.
    for n in range(10):
        failed = await _sign_in_from(server, f"198.51.100.{n}", "hugo", passwords.WRONG[2])
        assert code_of(failed) == "UNAUTHENTICATED"
    limited = await _sign_in_from(server, "198.51.100.200", "hugo", PASSWORD)
    assert code_of(limited) == "RATE_LIMITED"
    assert "retryAfterSeconds" in limited["errors"][0]["extensions"]
    assert (await _sign_in_from(server, "198.51.100.201", "gina", PASSWORD))["data"]["signIn"]
    assert PASSWORD not in server.log_text() and passwords.WRONG[2] not in server.log_text()
