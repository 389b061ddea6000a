"""GraphiQL at /graphql works with no internet access: every asset is served by the app."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Page, Route, expect

from tests.support.server import LiveServer
from tests.web.common import new_guest, screenshot, use_token

REQUEST_CLI_LOGIN = 'mutation { requestCliLogin(deviceName: "graphiql") { requestId } }'


async def offline(context: BrowserContext) -> list[str]:
    """Abort every request that leaves 127.0.0.1; returns the list of those attempted."""
    attempted: list[str] = []

    async def handle(route: Route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            await route.continue_()
        else:
            attempted.append(url)
            await route.abort("internetdisconnected")

    await context.route("**/*", handle)
    return attempted


async def run_query(page: Page, query: str) -> None:
    editor = page.locator(".graphiql-query-editor .CodeMirror").first
    await editor.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(query)
    # GraphiQL re-parses the editor 100 ms after the last change (debounced); running before
    # that would send the previous document's operation type (a subscription over HTTP).
    await page.wait_for_timeout(400)
    await page.locator(".graphiql-execute-button").click()


async def test_graphiql_runs_a_query_offline(page: Page, live_server: LiveServer) -> None:
    attempted = await offline(page.context)
    response = await page.goto(live_server.base_url + "/graphql")
    assert response is not None and response.ok
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    await expect(page.locator(".graphiql-container")).to_be_visible()

    # Queries go over HTTP; the placeholder Authorization header is not sent.
    await run_query(page, "{ teams { id } }")
    result = page.locator(".result-window")
    await expect(result).to_contain_text('"pair"')
    await expect(result).to_contain_text('"squad"')
    await screenshot(page, "graphiql-desktop")

    # Subscriptions go over the websocket (graphql-transport-ws).
    await run_query(page, REQUEST_CLI_LOGIN)
    await expect(result).to_contain_text('"requestId"')
    text = await result.inner_text()
    request_id = text.split('"requestId": "', 1)[1].split('"', 1)[0]
    await run_query(
        page, f'subscription {{ cliLoginStatus(requestId: "{request_id}") {{ status }} }}'
    )
    await expect(result).to_contain_text('"PENDING"')

    assert attempted == [], f"GraphiQL tried to reach the internet: {attempted}"


async def test_graphiql_uses_the_web_page_token(page: Page, live_server: LiveServer) -> None:
    token = await new_guest(live_server, "Explorer")
    await use_token(page.context, token)
    attempted = await offline(page.context)
    await page.goto(live_server.base_url + "/graphql")
    await expect(page.locator(".graphiql-container")).to_be_visible()
    await run_query(page, "{ me { displayName } }")
    await expect(page.locator(".result-window")).to_contain_text('"Explorer"')
    assert attempted == []
