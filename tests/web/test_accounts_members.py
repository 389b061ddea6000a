"""Accounts and sharing on the web page (SPEC §12): sign up, sign in, upgrade a guest, my sessions
(list, revoke), a room's people panel with invite links (created, copied, accepted by others),
role changes and removal, and the read-only room a viewer sees. Every request the page makes
sends the text of one of its operation files, exactly."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Browser, Page, Request, expect

from tests.support.gql_client import expect_error, gql_http
from tests.support.operations import web_operation
from tests.support.server import LiveServer
from tests.web.common import (
    REPO_ROOT,
    TOKEN_KEY,
    Agent,
    new_guest,
    new_room,
    screenshot,
    use_token,
    wait_live,
)
from tests.web.conftest import DESKTOP, PHONE
from tests.web.test_room_page import FEED, QUEUE, _assert_accessible_and_fits, confirm

OPERATIONS = REPO_ROOT / "chatroom" / "web" / "operations"
ME = "{ me { id displayName } }"
MEMBERS = "query($c: ID!) { roomMembers(chatroomId: $c) { user { displayName } role } }"
REMOVE = "mutation($c: ID!, $u: ID!) { removeMember(chatroomId: $c, userId: $u) }"
AGENT_TOKEN = (
    "mutation($c: ID!, $r: String!) { createAgentToken(chatroomId: $c, role: $r) { token } }"
)


def record_documents(page: Page) -> list[dict[str, Any]]:
    """Collect the body of every GraphQL POST the page makes."""
    bodies: list[dict[str, Any]] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/graphql"):
            bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", on_request)
    return bodies


def assert_sent_as_files(bodies: list[dict[str, Any]], at_least: set[str]) -> None:
    """Each request's query is exactly the text of operations/<operationName>.graphql, with
    the fragments it spreads (what trusted documents register)."""
    sent = set()
    for body in bodies:
        name = body.get("operationName")
        path = OPERATIONS / f"{name}.graphql"
        assert path.is_file(), f"the page sent an operation with no file: {name!r}"
        assert body["query"] == web_operation(name), name
        sent.add(name)
    assert at_least <= sent, f"not exercised: {sorted(at_least - sent)}"


@asynccontextmanager
async def other_person(browser: Browser, viewport: Any = DESKTOP) -> AsyncIterator[Page]:
    """A second browser profile (another person); its uncaught page errors fail the test."""
    context = await browser.new_context(viewport=viewport, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(10_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out", exact=True).first.click()
    await expect(page.get_by_role("tab", name="Guest")).to_be_visible()


async def test_sign_up_sign_in_and_upgrade_a_guest(page: Page, live_server: LiveServer) -> None:
    bodies = record_documents(page)
    base = live_server.base_url

    await page.set_viewport_size(PHONE)
    await page.goto(base + "/")
    await expect(page.get_by_label("Your name")).to_be_focused()
    await _assert_accessible_and_fits(page)
    await screenshot(page, "sign-in-phone")
    await page.set_viewport_size(DESKTOP)

    # Create an account from the sign-in page.
    await page.get_by_role("tab", name="Create account").click()
    await page.get_by_label("Username").fill("web-ada")
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("alert")).to_contain_text("8 to 1024 characters")
    await page.get_by_label("Password").fill("correct horse battery")
    await screenshot(page, "sign-up-desktop")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="My rooms")).to_be_visible()
    await expect(page.locator(".whoami")).to_have_text("web-ada")
    await sign_out(page)

    # Sign in: a wrong password is refused without saying which part was wrong.
    await page.get_by_role("tab", name="Sign in").click()
    await page.get_by_label("Username").fill("web-ada")
    await page.get_by_label("Password").fill("wrong password!")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("heading", name="My rooms")).to_be_visible()
    await page.locator(".whoami").click()
    await expect(page.locator(".account-kind")).to_contain_text("Account")
    await expect(page.get_by_role("form", name="Turn this guest into an account")).to_have_count(0)
    await sign_out(page)

    # A guest with a room becomes an account and keeps the room.
    await page.get_by_label("Your name").fill("Gus")
    await page.get_by_role("button", name="Continue as guest").click()
    await expect(page.get_by_role("heading", name="My rooms")).to_be_visible()
    token = str(await page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')"))
    await new_room(live_server, token, name="Gus's room")
    await page.locator(".whoami").click()
    await expect(page.locator(".account-kind")).to_contain_text("Guest")
    await page.get_by_label("Username").fill("gus-account")
    await page.get_by_label("Password").fill("another good one")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator(".toast").filter(has_text="You now have an account")).to_be_visible()
    await expect(page.locator(".account-kind")).to_contain_text("Account")
    await sign_out(page)
    await page.get_by_role("tab", name="Sign in").click()
    await page.get_by_label("Username").fill("gus-account")
    await page.get_by_label("Password").fill("another good one")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator(".room-card")).to_have_text(re.compile("Gus's room"))

    assert_sent_as_files(
        bodies, {"SignUp", "SignIn", "CreateGuestSession", "UpgradeGuest", "RevokeSession", "Me"}
    )


async def test_my_sessions_list_and_revoke(page: Page, live_server: LiveServer) -> None:
    bodies = record_documents(page)
    token = await new_guest(live_server, "Sam <b>bold</b>")
    room = await new_room(live_server, token, name="Sessions room")
    async with gql_http(live_server, token) as s:
        agent_token = (await s.execute(AGENT_TOKEN, c=room["id"], r="builder"))["createAgentToken"][
            "token"
        ]
    async with gql_http(live_server, agent_token) as s:
        await s.execute(ME)  # the agent token works until it is revoked

    await use_token(page.context, token)
    await page.goto(live_server.base_url + "/account")
    sessions = page.locator(".session-list").first.locator(":scope > li")
    await expect(sessions).to_have_count(2)
    await expect(sessions.first).to_contain_text("This browser")
    await expect(sessions.first.locator(".tag-current")).to_have_text("current")
    agent = sessions.filter(has_text="Agent token: builder")
    await expect(agent).to_have_count(1)
    # The display name is text, not markup.
    await expect(page.locator(".account-name")).to_have_text("Sam <b>bold</b>")
    assert await page.locator(".account-name b").count() == 0
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        await _assert_accessible_and_fits(page)
        await screenshot(page, f"account-{label}")
        await page.locator(".session-list").first.scroll_into_view_if_needed()
        await screenshot(page, f"account-sessions-{label}")
    await page.set_viewport_size(DESKTOP)

    await agent.get_by_role("button", name="Revoke session: Agent token: builder").click()
    await confirm(page)
    await expect(page.locator(".toast").filter(has_text="Session revoked")).to_be_visible()
    await expect(sessions).to_have_count(1)
    await expect(page.locator(".ended-sessions summary")).to_have_text("Ended sessions (1)")
    async with gql_http(live_server, agent_token) as s:
        code, _ = await expect_error(s.execute(ME))
    assert code == "UNAUTHENTICATED"
    async with gql_http(live_server, token) as s:
        assert (await s.execute(ME))["me"]["displayName"] == "Sam <b>bold</b>"

    # Signing out from the list revokes this browser's own session.
    await sessions.first.get_by_role("button", name="Sign out of this browser").click()
    await confirm(page)
    await expect(page.get_by_role("tab", name="Guest")).to_be_visible()
    async with gql_http(live_server, token) as s:
        code, _ = await expect_error(s.execute(ME))
    assert code == "UNAUTHENTICATED"
    assert_sent_as_files(bodies, {"Sessions", "RevokeSession", "Me"})


async def join_with_link(page: Page, link: str, name: str) -> str:
    """Open an invite link signed out, continue as a guest, join; returns the room id."""
    await page.goto(link)
    await expect(page.get_by_role("heading", name="You are invited to a room")).to_be_visible()
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Continue as guest").click()
    await page.get_by_role("button", name="Join the room").click()
    await page.wait_for_url(re.compile(r"/rooms/[^/#]+$"))
    await wait_live(page)
    return page.url.rsplit("/", 1)[1]


async def create_invite(page: Page, role: str, uses: int = 1) -> str:
    """Create an invite link from the people panel and copy it; returns the copied link."""
    await page.get_by_label("Role", exact=True).select_option(role)
    await page.get_by_label("Uses").fill(str(uses))
    await page.get_by_role("button", name="Create link").click()
    link = page.get_by_label("Invite link")
    await expect(link).to_have_value(re.compile(r"#invite=chi_"))
    await page.locator(".invite-made").get_by_role("button", name="Copy").click()
    await expect(
        page.locator(".toast").filter(has_text="Copied the invite link").last
    ).to_be_visible()
    copied = str(await page.evaluate("navigator.clipboard.readText()"))
    assert copied == await link.input_value()
    return copied


async def gql_call(server: LiveServer, token: str, doc: str, **variables: Any) -> dict[str, Any]:
    async with gql_http(server, token) as s:
        return await s.execute(doc, **variables)


async def room_members(server: LiveServer, token: str, room_id: str) -> list[tuple[str, str]]:
    async with gql_http(server, token) as s:
        rows = (await s.execute(MEMBERS, c=room_id))["roomMembers"]
    return [(r["user"]["displayName"], r["role"]) for r in rows]


async def test_members_invites_and_the_read_only_viewer(
    page: Page, browser: Browser, live_server: LiveServer
) -> None:
    bodies = record_documents(page)
    owner_token = await new_guest(live_server, "Olive")
    room = await new_room(live_server, owner_token, teamId="squad", name="Shared room")
    room_id = str(room["id"])
    async with gql_http(live_server, owner_token) as s:
        owner = Agent(s, room_id)
        for role in ("manager", "builder"):
            await owner.join(role)
        await owner.send("Ship the invite flow")
        await owner.claim_next("manager")
        await owner.send("Then document it")
        await owner.add_backlog("Expire old invites")

    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await use_token(page.context, owner_token)
    await page.goto(f"{live_server.base_url}/rooms/{room_id}")
    await wait_live(page)
    people = page.locator(".people-list > li")
    await expect(people).to_have_count(1)
    await expect(people.first).to_contain_text("Olive")
    await expect(people.first.locator(".badge")).to_have_text("owner")

    member_link = await create_invite(page, "MEMBER")
    viewer_link = await create_invite(page, "VIEWER", uses=2)
    assert member_link.startswith(live_server.base_url + "/#invite=")

    # A member joins through the link and can act: send, steer.
    async with other_person(browser) as member_page:
        assert await join_with_link(member_page, member_link, "Mia <img src=x>") == room_id
        await expect(member_page.locator("#room-title")).to_have_text("Shared room")
        await expect(member_page.get_by_label("Message", exact=True)).to_be_visible()
        await expect(member_page.get_by_role("button", name="Interrupt")).to_be_visible()
        await expect(member_page.locator(".readonly-note")).to_be_hidden()
        # Renaming and completing the room stay the owner's.
        await expect(member_page.get_by_role("button", name="Rename room")).to_have_count(0)
        await expect(member_page.get_by_role("button", name="Mark room complete")).to_have_count(0)
        await member_page.get_by_label("Message", exact=True).fill("Member here")
        await member_page.get_by_label("Message", exact=True).press("Enter")
        await expect(member_page.locator(FEED).filter(has_text="Member here")).to_have_count(1)
        await expect(member_page.locator(".invite-form")).to_have_count(0)  # owner only
        await member_page.get_by_role("link", name="Back to my rooms").click()
        await expect(member_page.locator(".room-card")).to_contain_text("Shared room")
        # Completing the room is the owner's: its card offers it to the owner only (myRole).
        await expect(
            member_page.get_by_role("button", name="Mark room Shared room complete")
        ).to_have_count(0)
        # The link was for one use: a second person is refused.
        async with other_person(browser) as late_page:
            await late_page.goto(member_link)
            await late_page.get_by_label("Your name").fill("Late")
            await late_page.get_by_role("button", name="Continue as guest").click()
            await late_page.get_by_role("button", name="Join the room").click()
            await expect(late_page.get_by_role("alert")).to_contain_text(
                "unknown, expired or used up"
            )

    # A viewer joins and sees the room read-only, live.
    async with other_person(browser) as viewer_page:
        await join_with_link(viewer_page, viewer_link, "Vera")
        await expect(viewer_page.locator(".readonly-note")).to_contain_text("You are a viewer")
        await expect(viewer_page.get_by_label("Message", exact=True)).to_be_hidden()
        for name in ("Interrupt", "Rename room", "Mark room complete", "Add"):
            await expect(viewer_page.get_by_role("button", name=name, exact=True)).to_have_count(0)
        await expect(viewer_page.locator(f"{QUEUE} button")).to_have_count(0)
        await expect(viewer_page.locator(".task-actions")).to_have_count(0)
        await expect(
            viewer_page.get_by_role("button", name=re.compile("^Copy the agent"))
        ).to_have_count(0)
        await expect(viewer_page.locator(QUEUE)).to_have_count(2)  # ours and the member's
        assert "null" not in await viewer_page.locator("#side").inner_text()
        async with gql_http(live_server, owner_token) as s:
            await Agent(s, room_id).send("Owner says hi")
        await expect(viewer_page.locator(FEED).filter(has_text="Owner says hi")).to_have_count(1)
        await screenshot(viewer_page, "room-viewer-desktop")
        await viewer_page.set_viewport_size(PHONE)
        await _assert_accessible_and_fits(viewer_page)
        await screenshot(viewer_page, "room-viewer-phone")

        # The owner's panel shows both live (names as text); the owner makes the viewer a
        # member, and the viewer's page gets its controls back without a reload.
        await expect(people).to_have_count(3)
        await expect(people.nth(1).locator(".person-name")).to_have_text("Mia <img src=x>")
        assert await page.locator(".people-list img").count() == 0
        await screenshot(page, "room-members-desktop")
        await page.get_by_label("Role of Vera").select_option("MEMBER")
        await expect(page.locator(".toast").filter(has_text="Vera is now a member")).to_be_visible()
        await expect(viewer_page.get_by_label("Message", exact=True)).to_be_visible()
        await expect(viewer_page.locator(".readonly-note")).to_be_hidden()

    assert await room_members(live_server, owner_token, room_id) == [
        ("Olive", "owner"),
        ("Mia <img src=x>", "member"),
        ("Vera", "member"),
    ]

    # Remove Mia (confirmed).
    await page.get_by_role("button", name="Remove Mia <img src=x> from the room").click()
    await confirm(page)
    await expect(people).to_have_count(2)
    assert await room_members(live_server, owner_token, room_id) == [
        ("Olive", "owner"),
        ("Vera", "member"),
    ]

    # The phone: the people panel sits in the Team & tasks sheet.
    await page.set_viewport_size(PHONE)
    await page.get_by_role("button", name=re.compile("^Team & tasks")).click()
    await page.locator(".people").scroll_into_view_if_needed()
    await _assert_accessible_and_fits(page)
    await screenshot(page, "room-members-phone-panel")
    assert_sent_as_files(
        bodies,
        {"Room", "Feed", "RoomMembers", "CreateRoomInvite", "SetMemberRole", "RemoveMember"},
    )


async def test_accepting_an_invite_when_signed_in(
    browser: Browser, live_server: LiveServer
) -> None:
    owner = await new_guest(live_server, "Owen")
    room = await new_room(live_server, owner, name="Quick join")
    guest = await new_guest(live_server, "Quinn")
    async with gql_http(live_server, owner) as s:
        invite = (
            await s.execute(
                "mutation($i: CreateRoomInviteInput!) { createRoomInvite(input: $i) { url } }",
                i={"chatroomId": room["id"], "role": "VIEWER"},
            )
        )["createRoomInvite"]
    async with other_person(browser, PHONE) as page:
        await use_token(page.context, guest)
        await page.goto(invite["url"])
        await expect(page.get_by_role("heading", name="Join a room")).to_be_visible()
        await screenshot(page, "invite-phone")
        await page.get_by_role("button", name="Join the room").click()
        await page.wait_for_url(re.compile(r"/rooms/[^/#]+$"))
        await expect(page.locator("#room-title")).to_have_text("Quick join")
        await expect(page.locator(".readonly-note")).to_be_visible()
        await wait_live(page)
        assert ("Quinn", "viewer") in await room_members(live_server, owner, str(room["id"]))

        # Removed by the owner, the open room page loses the room at once.
        quinn = (await gql_call(live_server, guest, ME))["me"]["id"]
        await gql_call(live_server, owner, REMOVE, c=room["id"], u=quinn)
        await expect(page.get_by_role("heading", name="Room not found")).to_be_visible()
