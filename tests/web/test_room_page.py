"""The web page in a real browser: sign-in, rooms, the live room page and its task actions,
safe rendering of message content, and screenshots at desktop and phone widths."""

from __future__ import annotations

import re
import time

from playwright.async_api import Page, expect

from tests.support.gql_client import gql_http
from tests.support.server import LiveServer
from tests.web.common import (
    COMPLETE_ROOM,
    TOKEN_KEY,
    Agent,
    new_guest,
    new_room,
    screenshot,
    seq_counts,
    use_token,
    wait_live,
)
from tests.web.conftest import PHONE

FEED = "#feed > li"
QUEUE = "ol[aria-labelledby=queue-title] > li.task"
BACKLOG = "ul[aria-labelledby=backlog-title] > li.task"
CURRENT = ".current-box li.task"


async def confirm(page: Page) -> None:
    """Press the confirming button of the open confirmation dialog."""
    await page.locator("dialog[open] button[value=ok]").click()
    await expect(page.locator("dialog[open]")).to_have_count(0)


async def sign_in_and_create_room(page: Page, server: LiveServer, name: str) -> tuple[str, str]:
    """Guest sign-in and a pair room, both through the UI: (token, room id)."""
    await page.goto(server.base_url + "/")
    await page.get_by_label("Your name").fill("Ada")
    await page.get_by_role("button", name="Continue as guest").click()
    await expect(page.get_by_role("heading", name="My rooms")).to_be_visible()
    await page.get_by_role("button", name="New room").click()
    await expect(page.get_by_role("radio", name=re.compile("^Pair"))).to_be_checked()
    await page.get_by_label("Name (optional)").fill(name)
    await page.get_by_role("button", name="Create room").click()
    await page.wait_for_url(re.compile(r"/rooms/[^/]+$"))
    room_id = page.url.rsplit("/", 1)[1]
    token = await page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')")
    assert token, "the page kept no token in localStorage"
    await expect(page.locator("#room-title")).to_have_text(name)
    await wait_live(page)
    return str(token), room_id


async def send_from_page(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")


async def test_live_room_flow_and_task_actions(page: Page, live_server: LiveServer) -> None:
    token, room_id = await sign_in_and_create_room(page, live_server, "Flow room")
    await page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads
    feed = page.locator(FEED)

    # The user's request, from the send box (Enter sends).
    await send_from_page(page, "Build the **login** form")
    first = feed.filter(has_text="Build the login form")
    await expect(first).to_have_count(1)
    await expect(first.locator("strong")).to_have_text("login")  # markdown rendered
    await expect(first.locator(".task-badge")).to_have_text("pending")

    async with gql_http(live_server, token) as session:
        agent = Agent(session, room_id)

        # The builder claims: its status and the task's badge follow live.
        await agent.claim_next("builder")
        await agent.classify("builder", "NEW_FEATURE")
        await expect(first.locator(".task-badge")).to_have_text("in progress · builder")
        await expect(first.locator(".class-badge")).to_have_text("new feature")
        builder = page.locator(".member[data-role=builder]")
        await expect(builder.locator(".member-word")).to_have_text("working")
        await expect(page.locator(".working")).to_contain_text("builder is working")

        # Sending is never blocked by a busy team: the message queues.
        await expect(page.get_by_label("Message", exact=True)).to_be_enabled()
        await send_from_page(page, "Also add a *logout* button")
        queued = feed.filter(has_text="Also add a logout button")
        await expect(queued.locator(".task-badge")).to_have_text("queued #1")
        await expect(page.locator(QUEUE)).to_have_count(1)
        await expect(page.locator(QUEUE).first).to_contain_text("Also add a logout button")

        # The handoff shows up within a second, without a reload.
        started = time.monotonic()
        await agent.handoff("builder", "reviewer", "Login form built; tests pass. Please review.")
        handoff = feed.filter(has_text="Login form built")
        await expect(handoff).to_be_visible(timeout=1_000)
        elapsed = time.monotonic() - started
        assert elapsed < 1.5, f"the handoff took {elapsed:.2f}s to appear"
        await expect(handoff.locator(".type-badge")).to_have_text("handoff")
        await expect(handoff.locator(".target")).to_contain_text("reviewer")
        await expect(handoff.locator(".sender")).to_have_text("builder")
        await expect(handoff.locator(".task-badge")).to_have_text("pending")
        await expect(first.locator(".task-badge")).to_have_text("done")
        assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"

        # Backlog: add (UI) -> edit (UI) -> move to queue (UI).
        await page.get_by_label("New backlog task").fill("Write the docs")
        await page.get_by_role("button", name="Add", exact=True).click()
        backlog = page.locator(BACKLOG)
        await expect(backlog).to_have_count(1)
        await expect(backlog.first).to_contain_text("Write the docs")
        await backlog.first.get_by_role("button", name=re.compile("^Edit task")).click()
        editor = page.get_by_label("Task text")
        await editor.fill("Write the user docs")
        await editor.press("Control+Enter")
        await expect(backlog.first).to_contain_text("Write the user docs")
        assert await agent.task_status("Write the user docs") == "BACKLOG"

        await backlog.first.get_by_role("button", name=re.compile("^Move to queue")).click()
        await expect(backlog).to_have_count(0)
        queue = page.locator(QUEUE)
        await expect(queue).to_have_count(2)
        await expect(queue.nth(1)).to_contain_text("Write the user docs")
        assert await agent.task_status("Write the user docs") == "QUEUED"

        # Backlog added through the API appears live; "Done" completes it from the UI.
        await agent.add_backlog("Tidy the CSS")
        await expect(backlog).to_have_count(1)
        await backlog.first.get_by_role("button", name=re.compile("^Mark done")).click()
        await expect(backlog).to_have_count(0)
        assert await agent.task_status("Tidy the CSS") == "COMPLETED"

        # Cancel a queued task (with confirmation).
        await queue.nth(1).get_by_role("button", name=re.compile("^Cancel task")).click()
        await confirm(page)
        await expect(queue).to_have_count(1)
        assert await agent.task_status("Write the user docs") == "CANCELLED"

        # Release a stuck task: the reviewer claims and goes silent; the owner takes it back.
        await agent.claim_next("reviewer")
        current = page.locator(CURRENT)
        await expect(current.locator(".badge").first).to_have_text("in progress")
        await current.get_by_role("button", name=re.compile("^Release")).click()
        await confirm(page)
        await expect(current.locator(".badge").first).to_have_text("pending")
        assert await agent.task_status("Login form built; tests pass. Please review.") == "PENDING"

        # Force-complete the active task: the queued request takes the baton.
        await current.get_by_role("button", name=re.compile("^Force complete")).click()
        await confirm(page)
        await expect(current).to_contain_text("Also add a logout button")
        await expect(queue).to_have_count(0)
        await expect(queued.locator(".task-badge")).to_have_text("pending")
        assert await agent.task_status("Also add a *logout* button") == "PENDING"

    # Every message is shown exactly once.
    counts = await seq_counts(page)
    assert counts and set(counts.values()) == {1}, counts


async def test_message_content_cannot_inject_script(page: Page, live_server: LiveServer) -> None:
    token = await new_guest(live_server, "xss")
    room = await new_room(live_server, token, name="XSS room")
    script = "<script>window.__xss=1</script>"
    img = '<img src=x onerror="window.__xss=2">'
    link = "[click me](javascript:window.__xss=3)"
    async with gql_http(live_server, token) as session:
        agent = Agent(session, room["id"])
        await agent.send(f"{script}\n\nand {img} inline\n\n{link}")
        await agent.claim_next("builder")
        await agent.handoff("builder", "reviewer", f"{img}\n\n{script}")

    await use_token(page.context, token)
    await page.goto(f"{live_server.base_url}/rooms/{room['id']}")
    await wait_live(page)
    feed = page.locator(FEED)
    await expect(feed).to_have_count(2)
    # The markup is shown as text...
    await expect(feed.first).to_contain_text(script)
    await expect(feed.first).to_contain_text(img)
    await expect(feed.nth(1)).to_contain_text(script)
    await expect(feed.nth(1)).to_contain_text(img)
    # ... and typed into the send box too.
    await send_from_page(page, f"typed {img} and {script}")
    await expect(feed.nth(2)).to_contain_text(img)
    await page.wait_for_timeout(300)  # give any injected handler time to fire

    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert await page.locator("#feed img, #feed script").count() == 0
    await expect(feed.first.get_by_role("link", name="click me")).to_have_count(0)


async def _busy_room(server: LiveServer, token: str) -> tuple[str, int]:
    """A squad room with history, a working agent, a queue and a backlog."""
    room = await new_room(server, token, teamId="squad", name="Checkout redesign")
    async with gql_http(server, token) as session:
        agent = Agent(session, room["id"])
        for role in ("manager", "architect", "builder", "reviewer"):
            await agent.join(role)
        await agent.send(
            "Redesign the **checkout** page:\n\n- one column on phones\n- keep the coupon field\n"
            "- show the total before tax"
        )
        await agent.claim_next("manager")
        await agent.classify("manager", "NEW_FEATURE")
        await agent.handoff(
            "manager",
            "architect",
            "Plan the change. Constraints: no new dependencies; the coupon API stays as it is.",
        )
        await agent.claim_next("architect")
        await agent.handoff(
            "architect",
            "builder",
            "Plan:\n\n1. Split `CheckoutPage` into `Summary` and `PaymentForm`.\n"
            "2. Use a CSS grid that collapses below 600 px.\n\n"
            "```tsx\nexport function Summary({ total }: Props) {\n"
            '  return <section aria-label="Order summary">{total}</section>;\n}\n```',
        )
        await agent.claim_next("builder")
        await agent.send("Also make the *Pay* button sticky on phones.")
        await agent.send("And log the coupon errors.")
        await agent.add_backlog("Dark mode for the receipt e-mail")
        await agent.add_backlog("A11y audit of the whole flow")
        messages = len(await agent.message_seqs())
    return str(room["id"]), messages


async def _rooms_list(server: LiveServer, token: str) -> None:
    await new_room(server, token, name="Docs sprint")
    done = await new_room(server, token, teamId="squad", name="Old migration")
    await new_room(server, token, roles=["planner", "coder"], entryPoint="planner", name="Spike")
    async with gql_http(server, token) as session:
        await session.execute(COMPLETE_ROOM, id=done["id"])


async def _assert_accessible_and_fits(page: Page) -> None:
    """Every control has a name, and nothing is wider than the viewport."""
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll('button, input, textarea, select, a[href]')]
            .filter((el) => el.offsetParent !== null)
            .filter((el) => {
                const labelled = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
                    || (el.labels && el.labels.length) || el.textContent.trim() || el.title;
                return !labelled;
            })
            .map((el) => el.outerHTML.slice(0, 120))"""
    )
    assert not unnamed, f"controls without an accessible name: {unnamed}"
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the viewport"


async def test_screenshots_desktop_and_phone(page: Page, live_server: LiveServer) -> None:
    token = await new_guest(live_server, "Grace")
    room_id, messages = await _busy_room(live_server, token)
    await _rooms_list(live_server, token)
    await use_token(page.context, token)

    for label, size in (("desktop", None), ("phone", PHONE)):
        if size:
            await page.set_viewport_size(size)
        await page.goto(live_server.base_url + "/")
        await expect(page.locator(".room-card")).to_have_count(3)
        await _assert_accessible_and_fits(page)
        await screenshot(page, f"rooms-{label}")

        await page.goto(f"{live_server.base_url}/rooms/{room_id}")
        await wait_live(page)
        await expect(page.locator(FEED)).to_have_count(messages)
        await expect(page.locator(f"{FEED}[data-type=join]")).to_have_count(4)
        await expect(page.locator(QUEUE)).to_have_count(2)
        await expect(page.locator(".working")).to_contain_text("builder is working")
        await _assert_accessible_and_fits(page)
        await screenshot(page, f"room-{label}")
        if size:
            await page.get_by_role("button", name=re.compile("^Team & tasks")).click()
            await expect(page.locator("#side")).to_be_visible()
            await _assert_accessible_and_fits(page)
            await screenshot(page, f"room-{label}-panel")
            await page.keyboard.press("Escape")
            await expect(page.locator("#side")).to_be_hidden()


async def test_room_controls_rename_prompt_interrupt_complete(
    page: Page, live_server: LiveServer
) -> None:
    token = await new_guest(live_server, "Lin")
    room = await new_room(live_server, token, name="Controls")
    room_id = room["id"]
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await use_token(page.context, token)
    await page.goto(f"{live_server.base_url}/rooms/{room_id}")
    await wait_live(page)

    # Rename inline: Enter saves (Escape would cancel).
    await page.get_by_role("button", name="Rename room").click()
    await page.get_by_label("Room name").fill("Controls, renamed")
    await page.get_by_label("Room name").press("Enter")
    await expect(page.locator("#room-title")).to_have_text("Controls, renamed")
    await expect(page).to_have_title("Controls, renamed | Chatroom")

    # The agent prompt: how to log in and the exact wait command, with this server's URL.
    wait = f'chatroom wait-for-message "{room_id}" --role="reviewer"'
    await page.get_by_role("button", name="Copy the agent prompt for reviewer").click()
    await expect(page.locator(".toast")).to_contain_text("Copied the reviewer prompt")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert wait in copied
    assert f"CHATROOM_SERVER={live_server.base_url}" in copied
    assert "chatroom auth login" in copied
    assert "reviewer" in copied and "Controls, renamed" in copied
    await page.get_by_role("button", name="View the agent prompt for builder").click()
    prompt = page.get_by_label("Agent prompt for builder", exact=True)
    await expect(prompt).to_have_value(re.compile(re.escape(wait.replace("reviewer", "builder"))))
    await screenshot(page, "prompt-dialog-desktop")
    await page.keyboard.press("Escape")
    await expect(prompt).to_have_count(0)

    # Interrupt (confirmed) shows up in the feed as an interrupt.
    async with gql_http(live_server, token) as session:
        agent = Agent(session, room_id)
        await agent.send("Start something")
        await agent.claim_next("builder")
    await page.get_by_role("button", name="Interrupt").click()
    await confirm(page)
    interrupt = page.locator(f"{FEED}[data-type=interrupt]")
    await expect(interrupt).to_have_count(1)
    await expect(interrupt.locator(".type-badge")).to_have_text("interrupt")
    await expect(page.locator(CURRENT).locator(".badge").first).to_have_text("pending")

    # Mark complete: back to the list, where the room is under Completed.
    await page.get_by_role("button", name="Mark room complete").click()
    await confirm(page)
    await expect(page.get_by_role("heading", name="My rooms")).to_be_visible()
    await page.get_by_role("tab", name=re.compile("^Completed")).click()
    await expect(page.locator(".room-card")).to_contain_text("Controls, renamed")
    await expect(
        page.get_by_role("button", name=re.compile("^Mark room .* complete"))
    ).to_have_count(0)


async def test_custom_team_from_the_create_form(page: Page, live_server: LiveServer) -> None:
    await use_token(page.context, await new_guest(live_server, "Kay"))
    await page.goto(live_server.base_url + "/")
    await page.get_by_role("button", name="New room").click()
    await page.get_by_role("radio", name=re.compile("^Custom")).check()
    await page.get_by_label("Roles, in order").fill("Planner, coder")
    await page.get_by_label("Entry point (gets your messages first)").select_option("coder")
    await page.get_by_label("Name (optional)").fill("Custom crew")
    await page.get_by_role("button", name="Create room").click()
    await page.wait_for_url(re.compile(r"/rooms/[^/]+$"))
    await wait_live(page)
    members = page.locator(".member")
    await expect(members).to_have_count(2)
    await expect(page.locator(".member[data-role=coder] .tag")).to_have_text("entry point")
    await expect(page.locator("#send-hint")).to_contain_text("Goes to coder")

    # A bad role is explained, and nothing is created.
    await page.goto(live_server.base_url + "/")
    await page.get_by_role("button", name="New room").click()
    await page.get_by_role("radio", name=re.compile("^Custom")).check()
    await page.get_by_label("Roles, in order").fill("builder, user")
    await page.get_by_role("button", name="Create room").click()
    await expect(page.get_by_role("alert")).to_contain_text("“user” is not a valid role")
    await expect(page.locator(".room-card")).to_have_count(1)


async def test_feed_starts_with_the_newest_50_and_loads_older(
    page: Page, live_server: LiveServer
) -> None:
    token = await new_guest(live_server, "Many")
    room = await new_room(live_server, token, name="Long history")
    async with gql_http(live_server, token) as session:
        agent = Agent(session, room["id"])
        for i in range(1, 61):
            await agent.send(f"request number {i}")
    await use_token(page.context, token)
    await page.goto(f"{live_server.base_url}/rooms/{room['id']}")
    await wait_live(page)
    feed = page.locator(FEED)
    await expect(feed).to_have_count(50)
    await expect(feed.first).to_contain_text("request number 11")
    await expect(feed.last).to_contain_text("request number 60")
    older = page.get_by_role("button", name="Load older messages")
    await older.click()
    await expect(feed).to_have_count(60)
    await expect(feed.first).to_contain_text("request number 1")
    await expect(older).to_be_hidden()
    counts = await seq_counts(page)
    assert sorted(counts) == list(range(1, 61)) and set(counts.values()) == {1}
