"""Browser fixtures: Debian's chromium driven by Playwright (async API), headless.

Chromium is required: when it is missing every web test fails with a clear message (CI installs
it with `apt-get install -y chromium`); it is never skipped. ``CHROMIUM_PATH`` overrides the path.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-proxy-server",  # the server is on loopback; never send it through a proxy
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 (one stat, before any I/O matters)
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. The web tests drive a real browser: install it "
            "(`apt-get install -y chromium`) or point CHROMIUM_PATH at a chromium binary.",
            pytrace=False,
        )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh profile (empty localStorage) per test, at desktop size."""
    ctx = await browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    ctx.set_default_timeout(10_000)
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    """A page whose uncaught JavaScript errors fail the test."""
    pg = await context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    assert not errors, f"uncaught errors in the page: {errors}"
