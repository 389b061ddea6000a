"""Device login (SPEC §5): `chatroom auth login` prints a URL and a code, a signed-in browser
approves the code, and the CLI gets its token through the `cliLoginStatus` subscription and
keeps it 0600. Denied and expired requests end with exit 3 and one line; the token is handed out
once; `auth logout` revokes the session on the server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import CLI, REPO_ROOT, Cli, file_mode, until_waiting
from tests.support import dbutil
from tests.support.gql_client import expect_error, gql_http, gql_ws
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

GUEST = "mutation($n: String) { createGuestSession(displayName: $n) { token user { id } } }"
APPROVE = "mutation($c: String!) { approveCliLogin(userCode: $c) { userCode status } }"
DENY = "mutation($c: String!) { denyCliLogin(userCode: $c) { userCode status } }"
REQUEST = 'mutation { requestCliLogin(deviceName: "test") { requestId userCode verificationPath } }'
STATUS = "subscription($r: ID!) { cliLoginStatus(requestId: $r) { status token user { id } } }"
ME = "query { me { id displayName } }"
CODE = re.compile(r"the code ([A-Z0-9]{4}-[A-Z0-9]{4}):")


class Login:
    """`chatroom auth login` running, its stdout read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, cli: Cli) -> Login:
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "auth",
            "login",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli.env(),
            cwd=REPO_ROOT,
        )
        return cls(proc)

    async def prompt(self, limit: float = 30.0) -> tuple[str, str]:
        """Read up to the "Waiting for the approval" line; return (url, code)."""
        assert self.proc.stdout is not None

        async def read() -> None:
            assert self.proc.stdout is not None
            while line := await self.proc.stdout.readline():
                self.lines.append(line.decode().rstrip("\n"))
                if self.lines[-1].startswith("Waiting for the approval"):
                    return
            raise AssertionError(f"auth login ended early: {self.lines}")

        await asyncio.wait_for(read(), limit)
        found = CODE.search("\n".join(self.lines))
        assert found, self.lines
        urls = [line for line in self.lines if line.startswith("http")]
        assert len(urls) == 1, self.lines
        return urls[0], found.group(1)

    async def finish(self, limit: float = 30.0) -> tuple[int, list[str], list[str]]:
        """(exit code, all stdout lines, stderr lines)."""
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), limit)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            raise AssertionError(
                f"auth login still running after {limit} s: {self.lines}"
            ) from None
        return (
            self.proc.returncode or 0,
            self.lines + out.decode().splitlines(),
            err.decode().splitlines(),
        )


async def web_session(server: LiveServer, name: str = "Browser") -> tuple[str, str]:
    """A signed-in browser: a guest token and its user id."""
    async with gql_http(server) as session:
        data = (await session.execute(GUEST, n=name))["createGuestSession"]
    return data["token"], data["user"]["id"]


async def as_web(server: LiveServer, token: str, doc: str, **variables: Any) -> dict[str, Any]:
    async with gql_http(server, token) as session:
        return await session.execute(doc, **variables)


async def statuses(server: LiveServer, request_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The first `count` results of a fresh cliLoginStatus subscription (no auth needed)."""
    got: list[dict[str, Any]] = []
    async with gql_ws(server) as session:

        async def read() -> None:
            async for result in session.subscribe(STATUS, r=request_id):
                got.append(result["cliLoginStatus"])
                if len(got) == count:
                    return

        await asyncio.wait_for(read(), 10)
    return got


async def request_id_of(db_url: str, code: str) -> str:
    rid = await dbutil.fetchval(
        db_url,
        "SELECT id::text FROM cli_login_requests WHERE user_code = $1"
        " ORDER BY created_at DESC LIMIT 1",
        code,
    )
    assert isinstance(rid, str), code
    return rid


@pytest.fixture
def device(live_server: LiveServer, tmp_path: Path) -> Cli:
    """A CLI that has never logged in, in a config dir of its own (created by the CLI)."""
    return Cli(live_server.base_url, tmp_path / "device" / "chatroom")


async def test_approved_login_stores_a_working_token_once(
    device: Cli, live_server: LiveServer, module_db: PgDatabase
) -> None:
    login = await Login.start(device)
    url, code = await login.prompt()
    assert url == f"{live_server.base_url}/cli-auth?code={code}"
    assert login.lines[0].startswith("To sign in, open this page in a browser")
    assert file_mode(device.config_dir / "login.json") is None  # nothing stored yet

    web_token, web_user = await web_session(live_server, "Dana")
    approved = await as_web(live_server, web_token, APPROVE, c=code)
    assert approved["approveCliLogin"] == {"userCode": code, "status": "APPROVED"}

    rc, out, err = await login.finish()
    assert rc == 0, (out, err)
    assert err == []
    path = device.config_dir / "login.json"
    assert out[-1] == (
        f"Logged in to {live_server.base_url} as Dana (user {web_user}); the token is saved in "
        f"{path} (readable only by you)."
    )
    assert file_mode(path) == 0o600
    assert file_mode(device.config_dir) == 0o700
    stored = json.loads(path.read_text())
    entry = stored["servers"][live_server.base_url]
    assert stored["current"] == live_server.base_url
    assert (entry["user_id"], entry["guest"]) == (web_user, False)
    token = entry["token"]
    assert token != web_token

    # The token works, on its own session (a device session of the approving user).
    status = (await device.run("auth", "status", "--json")).ok().json()
    assert status == {
        "server": live_server.base_url,
        "user_id": web_user,
        "display_name": "Dana",
        "token_source": "login_file",
    }
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = await dbutil.fetchrow(
        module_db.url,
        "SELECT user_id::text, device_name, revoked_at FROM sessions WHERE token_hash = $1",
        digest,
    )
    assert row is not None and row["user_id"] == web_user and row["revoked_at"] is None
    assert row["device_name"].startswith("chatroom CLI")

    # Collected once: another look at the request carries no token.
    request_id = await request_id_of(module_db.url, code)
    assert (
        await dbutil.fetchval(
            module_db.url, "SELECT status FROM cli_login_requests WHERE id = $1::uuid", request_id
        )
        == "collected"
    )
    again = await statuses(live_server, request_id)
    assert again == [{"status": "COLLECTED", "token": None, "user": None}]
    # The code is spent too: approving it again is a conflict, not a second token.
    code_again, _ = await expect_error(as_web(live_server, web_token, APPROVE, c=code))
    assert code_again == "CONFLICT"


async def test_token_is_delivered_once_through_the_api(live_server: LiveServer) -> None:
    """The same rule seen from the API: the first status after approval has the token; a
    second subscription to the same request id gets COLLECTED and no token."""
    async with gql_http(live_server) as session:
        request = (await session.execute(REQUEST))["requestCliLogin"]
    web_token, web_user = await web_session(live_server)
    pending = await statuses(live_server, request["requestId"])
    assert pending == [{"status": "PENDING", "token": None, "user": None}]
    await as_web(live_server, web_token, APPROVE, c=request["userCode"])
    first = await statuses(live_server, request["requestId"])
    assert first[0]["status"] in ("APPROVED", "COLLECTED")
    assert first[0]["token"] and first[0]["user"] == {"id": web_user}
    second = await statuses(live_server, request["requestId"])
    assert second == [{"status": "COLLECTED", "token": None, "user": None}]
    async with gql_http(live_server, first[0]["token"]) as session:
        assert (await session.execute(ME))["me"]["id"] == web_user


async def test_denied_login_exits_3_with_one_line(device: Cli, live_server: LiveServer) -> None:
    login = await Login.start(device)
    _, code = await login.prompt()
    web_token, _ = await web_session(live_server)
    denied = await as_web(live_server, web_token, DENY, c=code)
    assert denied["denyCliLogin"]["status"] == "DENIED"
    rc, out, err = await login.finish()
    assert rc == 3, (out, err)
    assert err == [
        "chatroom: LOGIN_DENIED: The login was denied in the browser; you are not logged in. "
        "Run `chatroom auth login` again if that was a mistake."
    ]
    assert out[-1].startswith("Waiting for the approval")  # nothing more on stdout
    assert file_mode(device.config_dir / "login.json") is None


async def test_expired_login_exits_3_with_one_line(
    device: Cli, live_server: LiveServer, module_db: PgDatabase
) -> None:
    login = await Login.start(device)
    _, code = await login.prompt()
    await asyncio.sleep(0.3)  # the CLI is subscribed and waiting
    await dbutil.execute(
        module_db.url,
        "UPDATE cli_login_requests SET expires_at = now() - interval '1 second'"
        " WHERE user_code = $1",
        code,
    )
    # No notification: the subscription finds out on its own periodic re-check.
    rc, out, err = await login.finish(limit=15)
    assert rc == 3, (out, err)
    assert err == [
        "chatroom: LOGIN_EXPIRED: The login code expired before it was approved. Run "
        "`chatroom auth login` again."
    ]
    assert file_mode(device.config_dir / "login.json") is None
    # Approving it now is refused as well.
    web_token, _ = await web_session(live_server)
    refused, message = await expect_error(as_web(live_server, web_token, APPROVE, c=code))
    assert refused == "CONFLICT" and "expired" in message


async def test_logout_revokes_the_token_on_the_server(
    device: Cli, live_server: LiveServer, module_db: PgDatabase
) -> None:
    login = await Login.start(device)
    _, code = await login.prompt()
    web_token, web_user = await web_session(live_server)
    await as_web(live_server, web_token, APPROVE, c=code)
    rc, out, err = await login.finish()
    assert rc == 0, (out, err)
    token = device.token()
    assert (await as_web(live_server, token, ME))["me"]["id"] == web_user
    # An agent is waiting with this token when the user logs out.
    room = (await device.json("create"))["room_id"]
    waiter = await device.start("wait-for-message", room, "--role", "builder")
    await until_waiting(live_server, token, room, "builder")

    out_json = (await device.run("auth", "logout", "--json")).ok().json()
    assert out_json["revoked"] is True and out_json["login_file_removed"] is True
    assert file_mode(device.config_dir / "login.json") is None
    revoked_at = await dbutil.fetchval(
        module_db.url,
        "SELECT revoked_at FROM sessions WHERE token_hash = $1",
        hashlib.sha256(token.encode()).hexdigest(),
    )
    assert revoked_at is not None

    # The old token is refused by the API and by the CLI; the web session is untouched.
    code_, _ = await expect_error(as_web(live_server, token, ME))
    assert code_ == "UNAUTHENTICATED"
    status = await device.run("auth", "status", env={"CHATROOM_TOKEN": token})
    assert status.rc == 3, str(status)
    assert len(status.err_lines) == 1
    assert status.err_lines[0].startswith("chatroom: UNAUTHENTICATED: The server refused the token")
    assert (await as_web(live_server, web_token, ME))["me"]["id"] == web_user
    # The revoked token closed the open wait: exit 3, one line after the "waiting" line.
    ended = await waiter.finish()
    assert ended.rc == 3, str(ended)
    assert ended.out == ""
    assert len(ended.err_lines) == 2, ended.err
    assert ended.err_lines[1].startswith("chatroom: UNAUTHENTICATED: The server refused the token")
    # Logged out locally as well.
    after = await device.run("auth", "status")
    assert after.rc == 3 and "Not logged in" in after.err, str(after)


async def test_login_survives_a_server_restart(
    tmp_path: Path, db: PgDatabase, start_server
) -> None:
    """The CLI keeps waiting through a restart (it reconnects quietly) and still gets the
    token when the code is approved afterwards."""
    # db before start_server: the server stops before its database is dropped.
    server: LiveServer = await start_server(db.url)
    device = Cli(server.base_url, tmp_path / "device")
    login = await Login.start(device)
    _, code = await login.prompt()
    await asyncio.sleep(0.3)
    await server.kill()
    await asyncio.sleep(0.5)
    await server.restart()
    web_token, web_user = await web_session(server)
    await as_web(server, web_token, APPROVE, c=code)
    rc, out, err = await login.finish()
    assert rc == 0, (out, err)
    assert err == []
    assert (await device.run("auth", "status", "--json")).ok().json()["user_id"] == web_user
