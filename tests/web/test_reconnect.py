"""The room page survives a server restart: it reconnects with backoff, resumes roomEvents from
the last seq it saw, shows what was committed meanwhile, and shows nothing twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import Page, expect

from tests.support.gql_client import gql_http
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer
from tests.web.common import Agent, new_guest, new_room, seq_counts, use_token, wait_live

FEED = "#feed > li"

# Records every state of the connection indicator, so the test can see the drop.
WATCH_CONN = """() => {
    window.__connStates = [];
    const el = document.getElementById('conn');
    new MutationObserver(() => window.__connStates.push(el.dataset.state))
        .observe(el, { attributes: true, attributeFilter: ['data-state'] });
}"""


async def test_page_resumes_after_server_restart(
    page: Page, db: PgDatabase, start_server: Callable[..., Awaitable[LiveServer]]
) -> None:
    server = await start_server(db.url)
    token = await new_guest(server, "restart")
    room = await new_room(server, token, name="Restart room")
    room_id = room["id"]
    async with gql_http(server, token) as session:
        agent = Agent(session, room_id)
        await agent.send("before the restart: one")
        await agent.claim_next("builder")
        await agent.send("before the restart: two (queued)")

    await use_token(page.context, token)
    await page.goto(f"{server.base_url}/rooms/{room_id}")
    await wait_live(page)
    feed = page.locator(FEED)
    await expect(feed).to_have_count(2)
    await page.evaluate(WATCH_CONN)
    await page.evaluate("window.__sameDocument = true")

    # The server goes away: the page notices and says so.
    await server.stop()
    await expect(page.locator("#conn")).not_to_have_attribute("data-state", "live")

    # Back on the same port; commit changes at once, before the page has reconnected.
    await server.start()
    async with gql_http(server, token) as session:
        agent = Agent(session, room_id)
        await agent.handoff("builder", "reviewer", "after the restart: handoff")
        await agent.send("after the restart: three")
        await agent.add_backlog("after the restart: backlog item")

        await wait_live(page, within_ms=20_000)
        await expect(feed.filter(has_text="after the restart: handoff")).to_have_count(1)
        await expect(feed.filter(has_text="after the restart: three")).to_have_count(1)
        await expect(page.locator("ul[aria-labelledby=backlog-title] > li.task")).to_contain_text(
            "after the restart: backlog item"
        )

        # And it is live again: a new change arrives without another reconnect.
        await agent.send("after the restart: four")
        await expect(feed.filter(has_text="after the restart: four")).to_have_count(1)
        expected = await agent.message_seqs()

    # Exactly one item per message, for every message, in order; no reload happened.
    counts = await seq_counts(page)
    assert counts == {seq: 1 for seq in expected}, counts
    order = await page.eval_on_selector_all(FEED, "items => items.map((li) => +li.dataset.seq)")
    assert order == sorted(order)
    states: list[Any] = await page.evaluate("window.__connStates")
    assert "reconnecting" in states or "connecting" in states, states
    assert states[-1] == "live", states
    assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
