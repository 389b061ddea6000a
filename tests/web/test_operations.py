"""The web page's GraphQL documents (SPEC §13): files in chatroom/web/operations, one operation
each, valid against schema.graphql with the shared fragments they spread (operations/fragments,
one fragment per file, each used); the page's JavaScript holds no query text and names only
documents that exist; the server serves each file byte for byte (the page composes what it
sends as `query` from them, the text trusted documents know by its sha256); and the page works
when only those documents may run."""

from __future__ import annotations

import re

import httpx
from graphql import FragmentDefinitionNode, parse
from playwright.async_api import Page, expect

from chatroom.schema.trusted_documents import FRAGMENT_SPREAD, FRAGMENTS
from tests.conftest import FreshDb, StartServer
from tests.support.gql_client import expect_error, gql_http
from tests.support.operations import check_operation_files, web_operation
from tests.support.server import LiveServer
from tests.web.common import REPO_ROOT, wait_live
from tests.web.test_room_page import FEED, send_from_page, sign_in_and_create_room

WEB = REPO_ROOT / "chatroom" / "web"
OPERATIONS = WEB / "operations"
FRAGMENT_FILES = sorted((OPERATIONS / FRAGMENTS).glob("*.graphql"))
SCRIPTS = sorted((WEB / "js").glob("*.js"))
# A call that names its document directly: gql("Name", ...) or operation("Name").
CALL = re.compile(r"""\b(?:gql|operation)\(\s*["'`]([^"'`]*)["'`]""")
# Any string literal that could be an operation name (task actions pass theirs along).
NAME = re.compile(r"""["']([A-Z][A-Za-z0-9]+)["']""")


def test_every_web_operation_is_valid_against_the_schema() -> None:
    check_operation_files(OPERATIONS, read=web_operation)


def test_each_fragment_file_holds_its_fragment_and_is_used() -> None:
    """A fragment file is one `fragment <Name>` named like the file, and some document spreads
    it (directly or through another fragment): no dead selections."""
    assert FRAGMENT_FILES
    used: set[str] = set()
    for path in sorted(OPERATIONS.glob("*.graphql")):
        document = parse(web_operation(path.stem))
        used |= {
            d.name.value for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
    for path in FRAGMENT_FILES:
        definitions = parse(path.read_text(encoding="utf-8")).definitions
        assert len(definitions) == 1, path.name
        assert isinstance(definitions[0], FragmentDefinitionNode), path.name
        assert definitions[0].name.value == path.stem, path.name
    assert {p.stem for p in FRAGMENT_FILES} == used
    # The spreads the page and the registry follow are exactly the document's fragments.
    for path in sorted(OPERATIONS.glob("*.graphql")):
        text = web_operation(path.stem)
        names = {
            d.name.value for d in parse(text).definitions if isinstance(d, FragmentDefinitionNode)
        }
        assert set(FRAGMENT_SPREAD.findall(text)) == names, path.name


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
        for path in [*sorted(OPERATIONS.glob("*.graphql")), *FRAGMENT_FILES]:
            response = await client.get(f"/static/{path.relative_to(WEB)}")
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
