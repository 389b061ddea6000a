"""The CLI login approval page (/cli-auth?code=...): a request made through the API (as the CLI
does) is approved or denied in the browser, and the CLI side learns the outcome through the
`cliLoginStatus` subscription."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.cli.support import Cli, file_mode
from tests.support import dbutil
from tests.support.gql_client import gql_http, gql_ws
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer
from tests.web.common import screenshot

REQUEST = (
    "mutation($d: String) { requestCliLogin(deviceName: $d) {"
    " requestId userCode verificationPath status expiresAt } }"
)
STATUS = (
    "subscription($id: ID!) { cliLoginStatus(requestId: $id) {"
    " status token user { displayName } } }"
)
ME = "{ me { displayName } }"


async def request_login(server: LiveServer, device: str) -> dict[str, Any]:
    async with gql_http(server) as s:  # no token: this is the CLI before it has one
        return dict((await s.execute(REQUEST, d=device))["requestCliLogin"])


async def watch_status(server: LiveServer, request_id: str) -> list[dict[str, Any]]:
    """Follow cliLoginStatus until it ends; every status seen, in order."""
    seen: list[dict[str, Any]] = []
    async with gql_ws(server) as ws:
        async for result in ws.subscribe(STATUS, id=request_id):
            seen.append(result["cliLoginStatus"])
            if result["cliLoginStatus"]["status"] not in ("PENDING",):
                break
    return seen


async def test_approve_cli_login_after_guest_sign_in(page: Page, live_server: LiveServer) -> None:
    request = await request_login(live_server, "ada-laptop (Linux)")
    assert request["verificationPath"] == f"/cli-auth?code={request['userCode']}"
    watcher = asyncio.create_task(watch_status(live_server, request["requestId"]))
    try:
        # Not signed in yet: the page asks for a guest sign-in first, then shows the request.
        await page.goto(live_server.base_url + request["verificationPath"])
        await expect(page.locator(".user-code")).to_have_text(request["userCode"])
        await page.get_by_label("Your name").fill("Ada")
        await page.get_by_role("button", name="Sign in as a guest and continue").click()

        await expect(page.locator(".device-name")).to_have_text("ada-laptop (Linux)")
        # The request lives for minutes: a running mm:ss countdown, not "expired".
        await expect(page.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
        await screenshot(page, "cli-auth-desktop")
        await page.get_by_role("button", name="Approve").click()
        await expect(page.get_by_role("heading", name="Login approved")).to_be_visible()

        seen = await asyncio.wait_for(watcher, 10)
    finally:
        watcher.cancel()
    final = seen[-1]
    assert final["status"] == "APPROVED", seen
    assert final["token"], "the approved status must carry the token"
    assert final["user"]["displayName"] == "Ada"
    async with gql_http(live_server, final["token"]) as s:
        assert (await s.execute(ME))["me"]["displayName"] == "Ada"


async def test_deny_cli_login(page: Page, live_server: LiveServer) -> None:
    request = await request_login(live_server, "unknown box")
    watcher = asyncio.create_task(watch_status(live_server, request["requestId"]))
    try:
        # Typing the code by hand (lower case, no dash) works too.
        await page.goto(live_server.base_url + "/cli-auth")
        await page.get_by_label("Your name").fill("Bob")
        await page.get_by_role("button", name="Sign in as a guest and continue").click()
        code = request["userCode"].replace("-", "").lower()
        await page.get_by_label("Code shown by chatroom auth login").fill(code)
        await page.get_by_role("button", name="Continue").click()
        await expect(page.locator(".device-name")).to_have_text("unknown box")
        await page.get_by_role("button", name="Deny").click()
        await expect(page.get_by_role("heading", name="Login denied")).to_be_visible()
        seen = await asyncio.wait_for(watcher, 10)
    finally:
        watcher.cancel()
    assert seen[-1]["status"] == "DENIED", seen
    assert not seen[-1]["token"]


async def test_unknown_code_is_explained(page: Page, live_server: LiveServer) -> None:
    await page.goto(live_server.base_url + "/cli-auth?code=ZZZZ-ZZZZ")
    await page.get_by_label("Your name").fill("Cy")
    await page.get_by_role("button", name="Sign in as a guest and continue").click()
    await expect(page.get_by_role("alert")).to_contain_text("No login request has code")


async def test_browser_approval_completes_a_waiting_chatroom_auth_login(
    page: Page, live_server: LiveServer, module_db: PgDatabase, tmp_path: Path
) -> None:
    """The whole device flow with the real CLI: `chatroom auth login` waits, a person approves
    the code in the browser, and the CLI saves a working token (file mode 0600)."""
    cli = Cli(live_server.base_url, tmp_path / "config")
    running = await cli.start("auth", "login")
    code = None
    for _ in range(200):  # the CLI prints the code; the database has it as soon as it asked
        code = await dbutil.fetchval(
            module_db.url,
            "SELECT user_code FROM cli_login_requests WHERE status = 'pending' "
            "ORDER BY created_at DESC LIMIT 1",
        )
        if code:
            break
        await asyncio.sleep(0.05)
    assert code, "chatroom auth login never asked the server for a login"
    await page.goto(f"{live_server.base_url}/cli-auth?code={code}")
    await page.get_by_label("Your name").fill("Grace")
    await page.get_by_role("button", name="Sign in as a guest and continue").click()
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("heading", name="Login approved")).to_be_visible()

    result = await running.finish()
    assert result.rc == 0, str(result)
    assert code in result.out + result.err  # it showed the person the code to check
    login_files = list((tmp_path / "config").rglob("*.json"))
    assert login_files and file_mode(login_files[0]) == 0o600
    status = await cli.run("auth", "status")
    assert status.rc == 0 and "Grace" in status.out, str(status)
