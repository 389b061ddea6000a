"""An account on the command line: `chatroom auth login` (device flow) approved by a signed-in
account gives the CLI a session of that account, which sees the account's own and shared
rooms; the account lists its sessions and revokes the CLI's; `auth logout` signs out."""

from __future__ import annotations

from pathlib import Path

from tests.accounts.test_accounts import PASSWORD, SIGN_IN, SIGN_UP
from tests.accounts.test_members import ACCEPT, INVITE, ROOM, guest
from tests.cli.support import Cli
from tests.cli.test_device_login import APPROVE, Login
from tests.support.gql_client import post_graphql

SESSIONS = "query { sessions { id deviceName current revokedAt } }"
REVOKE = "mutation($id: ID) { revokeSession(sessionId: $id) { id revokedAt } }"
ME = "query { me { id displayName } }"


async def test_device_login_for_an_account(start_server, db_url, tmp_path: Path) -> None:
    server = await start_server(db_url)
    signed_up = await post_graphql(server, SIGN_UP, {"u": "erin", "p": PASSWORD})
    account_id = signed_up["data"]["signUp"]["user"]["id"]
    # The browser signs in with the password (a session of its own).
    web = (await post_graphql(server, SIGN_IN, {"u": "erin", "p": PASSWORD}))["data"]["signIn"]
    web_token = web["token"]
    own = (await post_graphql(server, ROOM, token=web_token))["data"]["createChatroom"]["id"]
    friend, _ = await guest(server, "friend")
    shared = (await post_graphql(server, ROOM, token=friend))["data"]["createChatroom"]["id"]
    made = await post_graphql(server, INVITE, {"r": shared, "role": "VIEWER"}, token=friend)
    code = made["data"]["createRoomInvite"]["code"]
    assert (await post_graphql(server, ACCEPT, {"c": code}, token=web_token))["data"]

    cli = Cli(server.base_url, tmp_path / "device" / "chatroom")
    login = await Login.start(cli)
    _, user_code = await login.prompt()
    approved = await post_graphql(server, APPROVE, {"c": user_code}, token=web_token)
    assert approved["data"]["approveCliLogin"]["status"] == "APPROVED", approved
    rc, out, err = await login.finish()
    assert rc == 0, (out, err)
    assert "as erin" in out[-1], out

    status = (await cli.run("auth", "status", "--json")).ok().json()
    assert (status["user_id"], status["display_name"]) == (account_id, "erin")
    listed = (await cli.run("list", "--json")).ok().json()
    text = str(listed)
    assert own in text and shared in text, listed  # its own room and the one shared with it
    cli_token = cli.token()
    me = await post_graphql(server, ME, token=cli_token)
    assert me["data"]["me"]["id"] == account_id

    # The account sees every session it has (sign-up, browser, CLI) and revokes the CLI's.
    sessions = (await post_graphql(server, SESSIONS, token=web_token))["data"]["sessions"]
    assert len(sessions) == 3 and sum(s["current"] for s in sessions) == 1
    (device,) = [s for s in sessions if (s["deviceName"] or "").startswith("chatroom CLI")]
    revoked = await post_graphql(server, REVOKE, {"id": device["id"]}, token=web_token)
    assert revoked["data"]["revokeSession"]["revokedAt"]
    refused = await post_graphql(server, ME, token=cli_token)
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # Signing out (the browser's own session): its token stops working at once.
    assert (await post_graphql(server, REVOKE, {}, token=web_token))["data"]["revokeSession"]
    gone = await post_graphql(server, ME, token=web_token)
    assert gone["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_cli_logout_revokes_an_accounts_session(start_server, db_url, tmp_path: Path) -> None:
    server = await start_server(db_url)
    await post_graphql(server, SIGN_UP, {"u": "frank", "p": PASSWORD})
    web = (await post_graphql(server, SIGN_IN, {"u": "frank", "p": PASSWORD}))["data"]["signIn"]
    cli = Cli(server.base_url, tmp_path / "device" / "chatroom")
    login = await Login.start(cli)
    _, user_code = await login.prompt()
    await post_graphql(server, APPROVE, {"c": user_code}, token=web["token"])
    assert (await login.finish())[0] == 0
    cli_token = cli.token()
    (await cli.run("auth", "logout")).ok()
    refused = await post_graphql(server, ME, token=cli_token)
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    sessions = (await post_graphql(server, SESSIONS, token=web["token"]))["data"]["sessions"]
    assert [s["revokedAt"] is not None for s in sessions].count(True) == 1
