"""The web page's GraphQL documents (SPEC §13): files in chatroom/web/operations, valid against
schema.graphql, one operation each; the page's JavaScript holds no query text and names only
documents that exist; the server serves each file byte for byte (what the page sends as
`query`, and what trusted documents know by its sha256); and the page works when only those
documents may run."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tests.conftest import FreshDb, StartServer
from tests.support.gql_client import expect_error, gql_http
from tests.support.operations import check_operation_files
from tests.support.server import LiveServer
from tests.web.common import REPO_ROOT, wait_live
from tests.web.test_room_page import FEED, send_from_page, sign_in_and_create_room

WEB = REPO_ROOT / "chatroom" / "web"
OPERATIONS = WEB / "operations"
SCRIPTS = sorted((WEB / "js").glob("*.js"))
# A call that names its document directly: gql("Name", ...) or operation("Name").
CALL = re.compile(r"""\b(?:gql|operation)\(\s*["'`]([^"'`]*)["'`]""")
# Any string literal that could be an operation name (task actions pass theirs along).
NAME = re.compile(r"""["']([A-Z][A-Za-z0-9]+)["']""")


def test_every_web_operation_is_valid_against_the_schema() -> None:
    check_operation_files(OPERATIONS)


def test_no_query_text_in_the_page_scripts() -> None:
    assert SCRIPTS
    for path in SCRIPTS:
        text = path.read_text()
        for marker in ("query ", "mutation ", "subscription ", "{ me", "{ teams"):
            for quote in "\"'`":
                assert f"{quote}{marker}" not in text, (path.name, marker)


def test_the_scripts_name_only_existing_documents_and_use_every_one() -> None:
    files = {p.stem for p in OPERATIONS.glob("*.graphql")}
    called: set[str] = set()
    mentioned: set[str] = set()
    for path in SCRIPTS:
        text = path.read_text()
        called |= set(CALL.findall(text))
        mentioned |= set(NAME.findall(text))
    assert called, "no gql(...) calls found: has the page's API changed?"
    assert called <= files, f"documents the page calls but that have no file: {called - files}"
    unused = files - mentioned - called
    assert not unused, f"operation files the page never uses: {sorted(unused)}"


async def test_operation_files_are_served_byte_for_byte(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, trust_env=False) as client:
        for path in sorted(OPERATIONS.glob("*.graphql")):
            response = await client.get(f"/static/operations/{path.name}")
            assert response.status_code == 200, path.name
            assert response.content == path.read_bytes(), path.name
            assert response.headers["cache-control"] == "no-cache"


async def test_the_page_works_when_only_trusted_documents_run(
    page: Page, fresh_db: FreshDb, start_server: StartServer
) -> None:
    """With CHATROOM_TRUSTED_DOCUMENTS=only nothing but registered documents runs: the page,
    which sends only its files' text, works as usual, its live feed included."""
    server = await start_server((await fresh_db()).url, {"CHATROOM_TRUSTED_DOCUMENTS": "only"})
    async with gql_http(server) as s:
        code, message = await expect_error(s.execute("{ teams { id } }"))
    assert code == "FORBIDDEN", message  # the mode is on: a typed document is refused

    _, room_id = await sign_in_and_create_room(page, server, "Trusted room")
    # A second tab of the same room shows what the first sends only through its subscription.
    other = await page.context.new_page()
    await other.goto(f"{server.base_url}/rooms/{room_id}")
    await wait_live(other)
    await send_from_page(page, "Only **trusted** documents here")
    await expect(other.locator(FEED).filter(has_text="Only trusted documents here")).to_have_count(
        1
    )
    await expect(page.locator(".people-list > li")).to_have_count(1)
    await page.get_by_role("button", name="Create link").click()
    await expect(page.get_by_label("Invite link")).to_have_value(re.compile("#invite="))
    await page.goto(server.base_url + "/account")
    await expect(page.locator(".session-list").first.locator(":scope > li")).to_have_count(1)
    await other.close()
