"""The room page's agent panel (SPEC §10, issue 13): per role, the agent slot's machine (online or
not), harness, state, activity line and last error, live from the room's events; Start / Stop /
Restart for those who may use them, checked on the server; a role without a slot says what to
run.

The daemon side is played through the real GraphQL API (registerMachine, startAgents,
claimAgentSlot, reportAgentState), as `chatroom machine start` would, and is the real daemon
where the page's printed commands are run as shown; the page is Chromium."""

from __future__ import annotations

import asyncio
import re
import shlex
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, Route, expect

from tests.cli.support import logged_in
from tests.runner.support import start_daemon
from tests.support.gql_client import gql_http
from tests.support.server import LiveServer
from tests.web.common import (
    SCREENSHOTS,
    new_guest,
    new_room,
    screenshot,
    use_token,
    wait_live,
)
from tests.web.conftest import DESKTOP, PHONE
from tests.web.test_accounts_members import assert_sent_as_files, other_person, record_documents
from tests.web.test_room_page import _assert_accessible_and_fits, confirm

SLOT = "id role machineId desiredState generation state activity lastError"
REGISTER = (
    "mutation($input: RegisterMachineInput!) { registerMachine(input: $input) { id name online } }"
)
START = f"mutation($input: StartAgentsInput!) {{ startAgents(input: $input) {{ {SLOT} }} }}"
STOP = f"mutation($input: AgentsInput!) {{ stopAgents(input: $input) {{ {SLOT} }} }}"
CLAIM = (
    "mutation($input: ClaimAgentSlotInput!) { claimAgentSlot(input: $input) {"
    f" slot {{ {SLOT} }} token }} }}"
)
REPORT = (
    f"mutation($input: ReportAgentStateInput!) {{ reportAgentState(input: $input) {{ {SLOT} }} }}"
)
SLOTS = f"query($id: ID!) {{ chatroom(id: $id) {{ agents {{ {SLOT} }} }} }}"
INVITE = "mutation($input: CreateRoomInviteInput!) { createRoomInvite(input: $input) { code } }"
ACCEPT = "mutation($code: String!) { acceptRoomInvite(code: $code) { id } }"
ME = "{ me { id } }"
SET_ROLE = (
    "mutation($c: ID!, $u: ID!, $r: MemberRole!) {"
    " setMemberRole(chatroomId: $c, userId: $u, role: $r) { role } }"
)
AGENT = ".agent-list > li"


def row(page: Page, role: str) -> Any:
    return page.locator(f"{AGENT}[data-role='{role}']")


class Daemon:
    """A machine's daemon, through the API with its owner's token (what `chatroom machine
    start` does): registers the machine, claims slots and reports their state."""

    def __init__(self, server: LiveServer, token: str, name: str) -> None:
        self.server = server
        self.token = token
        self.name = name
        self.daemon_id = str(uuid.uuid4())
        self.machine_id = ""

    async def call(self, doc: str, **variables: Any) -> dict[str, Any]:
        async with gql_http(self.server, self.token) as s:
            return await s.execute(doc, **variables)

    async def register(self) -> str:
        data = await self.call(
            REGISTER,
            input={
                "name": self.name,
                "harnesses": [{"name": "claude", "version": "2.0.14"}],
                "daemonId": self.daemon_id,
            },
        )
        self.machine_id = str(data["registerMachine"]["id"])
        return self.machine_id

    async def start(self, room_id: str, role: str, workdir: str) -> dict[str, Any]:
        data = await self.call(
            START,
            input={
                "chatroomId": room_id,
                "roles": [role],
                "machineId": self.machine_id,
                "harness": "claude",
                "workdir": workdir,
            },
        )
        return dict(data["startAgents"][0])

    async def claim(self, slot: dict[str, Any]) -> dict[str, Any]:
        data = await self.call(
            CLAIM,
            input={
                "slotId": slot["id"],
                "daemonId": self.daemon_id,
                "generation": slot["generation"],
            },
        )
        return dict(data["claimAgentSlot"]["slot"])

    async def report(self, slot: dict[str, Any], state: str, **fields: Any) -> dict[str, Any]:
        data = await self.call(
            REPORT,
            input={
                "slotId": slot["id"],
                "daemonId": self.daemon_id,
                "generation": slot["generation"],
                "state": state,
                **fields,
            },
        )
        return dict(data["reportAgentState"])


async def slots(server: LiveServer, token: str, room_id: str) -> dict[str, dict[str, Any]]:
    async with gql_http(server, token) as s:
        rows = (await s.execute(SLOTS, id=room_id))["chatroom"]["agents"]
    return {r["role"]: r for r in rows}


async def join(server: LiveServer, owner: str, room_id: str, name: str, role: str) -> str:
    """A new guest joins the room with an invite (role MEMBER or VIEWER); returns its token."""
    token = await new_guest(server, name)
    async with gql_http(server, owner) as s:
        code = (await s.execute(INVITE, input={"chatroomId": room_id, "role": role}))[
            "createRoomInvite"
        ]["code"]
    async with gql_http(server, token) as s:
        await s.execute(ACCEPT, code=code)
    return token


async def test_agent_panel_live_with_start_stop_restart(
    page: Page, browser: Browser, live_server: LiveServer
) -> None:
    bodies = record_documents(page)
    owner = await new_guest(live_server, "Olive")
    room = await new_room(live_server, owner, teamId="pair", name="Agents room")
    room_id = str(room["id"])
    # The owner runs the builder on their laptop; Mia (a member) runs the reviewer on her box.
    mia = await join(live_server, owner, room_id, "Mia", "MEMBER")
    laptop = Daemon(live_server, owner, "olive-laptop")
    box = Daemon(live_server, mia, "mia-box")
    await laptop.register()
    await box.register()
    builder = await laptop.start(room_id, "builder", "/home/olive/src/textutil")

    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await use_token(page.context, owner)
    await page.goto(f"{live_server.base_url}/rooms/{room_id}")
    await wait_live(page)

    # The builder's slot exists, set to run, not yet claimed; the reviewer has none and says
    # what to run, with the real room id (copied as it is shown).
    await expect(row(page, "builder")).to_contain_text("claude on olive-laptop")
    await expect(row(page, "builder")).to_contain_text("online")
    await expect(row(page, "builder").locator(".agent-state")).to_have_text("not started")
    command = f"chatroom agents start {room_id} --role reviewer --harness claude --workdir DIR"
    await expect(row(page, "reviewer")).to_contain_text("chatroom machine start")
    await expect(row(page, "reviewer")).to_contain_text(command)
    await page.get_by_role("button", name="Copy the command that starts the reviewer agent").click()
    assert await page.evaluate("navigator.clipboard.readText()") == command
    await expect(page.locator(".toast")).to_have_count(0, timeout=8_000)  # before the pictures
    await row(page, "reviewer").screenshot(path=str(SCREENSHOTS / "room-agents-no-slot.png"))

    # The daemon claims the slot and reports: the row follows each report live.
    builder = await laptop.claim(builder)
    await expect(row(page, "builder").locator(".agent-state")).to_have_text("starting")
    await laptop.report(builder, "WAITING")
    await expect(row(page, "builder").locator(".agent-state")).to_have_text("waiting for work")
    await laptop.report(builder, "WORKING", activity="Bash: pytest -q")
    await expect(row(page, "builder").locator(".agent-activity")).to_have_text(
        "Activity: Bash: pytest -q"
    )
    await expect(row(page, "builder").locator(".agent-state")).to_have_text("working")
    await laptop.report(builder, "WORKING", activity="Edit textutil.py")
    await expect(row(page, "builder").locator(".agent-activity")).to_have_text(
        "Activity: Edit textutil.py"
    )

    # Mia's reviewer fails: the owner's page shows the last error.
    reviewer = await box.claim(await box.start(room_id, "reviewer", "/srv/mia/textutil"))
    error = "claude exited with status 1:\nError: credit balance is too low"
    await box.report(reviewer, "NEEDS_ATTENTION", lastError=error)
    await expect(row(page, "reviewer").locator(".agent-state")).to_have_text("needs attention")
    await expect(row(page, "reviewer").locator(".agent-error-text")).to_have_text(error)
    await expect(row(page, "reviewer")).to_contain_text("claude on mia-box")
    # Whether a machine is online is its owner's to see (Query.machines): not on Olive's page.
    await expect(row(page, "reviewer").locator(".machine-online")).to_have_count(0)
    await _assert_accessible_and_fits(page)
    await page.locator(".agents").scroll_into_view_if_needed()
    shot = await screenshot(page, "room-agents-desktop")
    await page.locator(".agents").screenshot(path=str(shot.with_name("room-agents-panel.png")))
    await page.set_viewport_size(PHONE)
    await page.get_by_role("button", name=re.compile("^Team & tasks")).click()
    await page.locator(".agents").scroll_into_view_if_needed()
    await _assert_accessible_and_fits(page)
    await screenshot(page, "room-agents-phone-panel")
    await page.get_by_role("button", name="Close team and tasks").click()
    await page.set_viewport_size(DESKTOP)

    # The owner stops and restarts Mia's reviewer (the room's owner may), and stops and starts
    # the builder; each click changes the slot on the server.
    await row(page, "reviewer").get_by_role("button", name="Restart the reviewer agent").click()
    await confirm(page)
    # The mutation's answer is on the page (its toast) before the server is asked.
    await expect(page.locator(".toast").filter(has_text="reviewer: starting")).to_have_count(1)
    restarted = (await slots(live_server, owner, room_id))["reviewer"]
    assert restarted["generation"] == reviewer["generation"] + 1
    assert restarted["desiredState"] == "RUNNING"
    await row(page, "builder").get_by_role("button", name="Stop the builder agent").click()
    await confirm(page)
    await expect(row(page, "builder").locator(".agent-state")).to_have_text("stopping…")
    stopped = (await slots(live_server, owner, room_id))["builder"]
    assert stopped["desiredState"] == "STOPPED"
    assert stopped["generation"] == builder["generation"]
    await laptop.report(builder, "STOPPED")
    await expect(row(page, "builder").locator(".agent-state")).to_have_text("stopped")
    await expect(row(page, "builder").locator(".agent-activity")).to_have_count(0)
    await expect(row(page, "builder").get_by_role("button")).to_have_text(["Start"])
    await row(page, "builder").get_by_role("button", name="Start the builder agent").click()
    await expect(row(page, "builder").locator(".agent-state")).to_have_text("not started")
    started = (await slots(live_server, owner, room_id))["builder"]
    assert started["desiredState"] == "RUNNING"
    assert started["generation"] == builder["generation"] + 1  # a stopped slot restarts anew

    # Mia, a member: Stop / Restart on her own machine's reviewer, nothing on the owner's
    # builder. Vera, a viewer: no buttons at all, and no command to run.
    vera = await join(live_server, owner, room_id, "Vera", "VIEWER")
    async with other_person(browser) as mia_page:
        await use_token(mia_page.context, mia)
        await mia_page.goto(f"{live_server.base_url}/rooms/{room_id}")
        await wait_live(mia_page)
        await expect(row(mia_page, "reviewer").get_by_role("button")).to_have_text(
            ["Stop", "Restart"]
        )
        await expect(row(mia_page, "reviewer").locator(".machine-online")).to_have_text("online")
        await expect(row(mia_page, "builder").locator(".agent-state")).to_have_text("not started")
        await expect(row(mia_page, "builder").get_by_role("button")).to_have_count(0)
        await row(mia_page, "reviewer").get_by_role("button", name="Stop the reviewer").click()
        await confirm(mia_page)
        await expect(row(page, "reviewer").locator(".agent-state")).to_have_text("stopping…")
        assert (await slots(live_server, mia, room_id))["reviewer"]["desiredState"] == "STOPPED"
    async with other_person(browser) as vera_page:
        await use_token(vera_page.context, vera)
        await vera_page.goto(f"{live_server.base_url}/rooms/{room_id}")
        await wait_live(vera_page)
        await expect(row(vera_page, "reviewer")).to_contain_text("claude on mia-box")
        await expect(row(vera_page, "builder")).to_contain_text("claude on olive-laptop")
        await expect(vera_page.locator(f"{AGENT} button")).to_have_count(0)
    assert_sent_as_files(
        bodies, {"Room", "MyMachines", "StartAgents", "StopAgents", "RestartAgents"}
    )


async def test_a_refused_action_shows_the_servers_message(
    page: Page, live_server: LiveServer
) -> None:
    """Mia may start her stopped slot while she is a member. Made a viewer while her page has
    not yet read her new role (its membership re-read is held back), her Start is refused by
    the server, and the page says why; once the re-read arrives, the button is gone."""
    owner = await new_guest(live_server, "Olive")
    room_id = str((await new_room(live_server, owner, teamId="pair", name="Refusals"))["id"])
    mia = await join(live_server, owner, room_id, "Mia", "MEMBER")
    box = Daemon(live_server, mia, "mia-box")
    await box.register()
    await box.start(room_id, "builder", "/srv/mia/textutil")
    await box.call(STOP, input={"chatroomId": room_id, "roles": ["builder"]})

    await use_token(page.context, mia)
    await page.goto(f"{live_server.base_url}/rooms/{room_id}")
    await wait_live(page)
    start = row(page, "builder").get_by_role("button", name="Start the builder agent")
    await expect(start).to_be_visible()

    release = asyncio.Event()
    held = asyncio.Event()

    async def hold_members(route: Route) -> None:
        body = route.request.post_data_json or {}
        if body.get("operationName") == "RoomMembers":
            held.set()
            await release.wait()
        await route.continue_()

    await page.route("**/graphql", hold_members)
    async with gql_http(live_server, mia) as s:
        mia_id = (await s.execute(ME))["me"]["id"]
    async with gql_http(live_server, owner) as s:
        await s.execute(SET_ROLE, c=room_id, u=mia_id, r="VIEWER")
    await asyncio.wait_for(held.wait(), 10)  # the page has seen ROOM_UPDATED and re-reads

    await start.click()
    refusal = page.locator(".toast-error")
    await expect(refusal).to_have_count(1)
    message = await refusal.inner_text()
    assert re.search(r"viewer|steer|member", message, re.I), message
    assert (await slots(live_server, owner, room_id))["builder"]["desiredState"] == "STOPPED"

    release.set()
    await expect(row(page, "builder").get_by_role("button")).to_have_count(0)
    await expect(page.locator(".readonly-note")).to_be_visible()
    await page.unroute("**/graphql")


async def test_the_command_a_role_without_a_slot_shows_is_accepted_as_it_is(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    """What the page tells a person to run, run as shown (the CLI standing for `chatroom`):
    the daemon from the first command, then the copied `agents start` with DIR filled in. The
    page shows the new slot, and the daemon's claim and report, live."""
    cli = await logged_in(live_server, tmp_path / "config", "Olive")
    room_id = str((await new_room(live_server, cli.token(), teamId="pair", name="Run it"))["id"])
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await use_token(page.context, cli.token())
    await page.goto(f"{live_server.base_url}/rooms/{room_id}")
    await wait_live(page)
    how = row(page, "reviewer").locator(".agent-how-text code")
    await expect(how).to_have_count(2)
    daemon_command, start_command = await how.all_inner_texts()
    await page.get_by_role("button", name="Copy the command that starts the reviewer agent").click()
    assert await page.evaluate("navigator.clipboard.readText()") == start_command

    words = shlex.split(daemon_command)
    assert words[0] == "chatroom", daemon_command
    daemon = await start_daemon(cli, *words[1:])
    try:
        await daemon.line(r"following this machine's agents")
        workdir = tmp_path / "reviewer work"
        workdir.mkdir()
        words = shlex.split(start_command)
        assert words[0] == "chatroom" and words[-1] == "DIR", start_command
        (await cli.run(*words[1:-1], str(workdir))).ok()
        await expect(row(page, "reviewer")).to_contain_text("claude on")
        await expect(row(page, "reviewer").locator(".agent-workdir")).to_have_text(str(workdir))
        await expect(row(page, "reviewer").locator(".machine-online")).to_have_text("online")
        # The daemon claims the slot and says so: the row leaves "not started" by itself.
        await expect(row(page, "reviewer").locator(".agent-state")).not_to_have_text(
            re.compile("not started|no agent")
        )
    finally:
        assert await daemon.stop() == 0, daemon.out
