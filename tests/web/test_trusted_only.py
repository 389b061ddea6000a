"""With CHATROOM_TRUSTED_DOCUMENTS=only, GraphiQL runs nothing of its own and says why, in its
result pane; the web page, whose documents are all registered, works unchanged."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.conftest import FreshDb, StartServer
from tests.web.common import screenshot
from tests.web.test_graphiql import run_query


async def test_graphiql_says_why_a_typed_document_is_refused(
    page: Page, fresh_db: FreshDb, start_server: StartServer
) -> None:
    db = await fresh_db()
    server = await start_server(db.url, {"CHATROOM_TRUSTED_DOCUMENTS": "only"})
    await page.goto(server.base_url + "/graphql")
    await expect(page.locator(".graphiql-container")).to_be_visible()
    await run_query(page, "{ teams { id } }")
    result = page.locator(".result-window")
    await expect(result).to_contain_text("CHATROOM_TRUSTED_DOCUMENTS=only")
    await expect(result).to_contain_text('"FORBIDDEN"')
    await screenshot(page, "graphiql-trusted-only")
