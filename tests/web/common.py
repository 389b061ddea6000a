"""Helpers of the browser tests: GraphQL documents for driving a room through the API (the
"agent" side), and small page utilities.

The API side uses the real gql client over HTTP (``tests.support.gql_client``); the browser is
Debian's chromium driven by Playwright's async API (see ``conftest.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page

from tests.support.gql_client import GqlSession, gql_http
from tests.support.server import LiveServer

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
TOKEN_KEY = "chatroom.token"

TASK = "id status content assignedTo queuePosition"
CREATE_GUEST = (
    "mutation($n: String) { createGuestSession(displayName: $n) { token user { id displayName } } }"
)
CREATE_ROOM = (
    "mutation($input: CreateChatroomInput!) { createChatroom(input: $input) {"
    " id name teamRoles entryPoint } }"
)
COMPLETE_ROOM = "mutation($id: ID!) { completeChatroom(chatroomId: $id) { id status } }"
JOIN = "mutation($c: ID!, $r: String!) { joinChatroom(chatroomId: $c, role: $r) { role status } }"
SEND = (
    "mutation($input: SendMessageInput!) { sendMessage(input: $input) {"
    f" message {{ id seq }} task {{ {TASK} }} }} }}"
)
PENDING = f"query($c: ID!, $r: String!) {{ pendingTasks(chatroomId: $c, role: $r) {{ {TASK} }} }}"
CLAIM = (
    "mutation($input: ClaimTaskInput!) { claimTask(input: $input) {"
    f" success task {{ {TASK} }} }} }}"
)
CLASSIFY = (
    "mutation($input: ClassifyTaskInput!) { classifyTask(input: $input) { id classification } }"
)
HANDOFF = (
    "mutation($input: SendHandoffInput!) { sendHandoff(input: $input) {"
    f" message {{ id seq }} newTask {{ {TASK} }} promotedTask {{ {TASK} }} }} }}"
)
ADD_BACKLOG = (
    f"mutation($input: AddBacklogTaskInput!) {{ addBacklogTask(input: $input) {{ {TASK} }} }}"
)
TASKS = f"query($c: ID!) {{ tasks(chatroomId: $c) {{ {TASK} }} }}"
MESSAGES = "query($c: ID!) { messages(chatroomId: $c, last: 200) { nodes { seq type content } } }"


class Agent:
    """One owner's API session, used to play the agents (and the user) of a room."""

    def __init__(self, session: GqlSession, room_id: str) -> None:
        self.s = session
        self.room_id = room_id

    async def execute(self, doc: str, /, **variables: Any) -> dict[str, Any]:
        return await self.s.execute(doc, **variables)

    async def join(self, role: str) -> None:
        await self.s.execute(JOIN, c=self.room_id, r=role)

    async def send(self, content: str) -> dict[str, Any]:
        data = await self.s.execute(SEND, input={"chatroomId": self.room_id, "content": content})
        return data["sendMessage"]

    async def claim_next(self, role: str) -> dict[str, Any]:
        pending = (await self.s.execute(PENDING, c=self.room_id, r=role))["pendingTasks"]
        assert pending, f"nothing pending for {role}"
        data = await self.s.execute(
            CLAIM, input={"chatroomId": self.room_id, "taskId": pending[0]["id"], "role": role}
        )
        result = data["claimTask"]
        assert result["success"], result
        return dict(result["task"])

    async def classify(self, role: str, classification: str) -> None:
        await self.s.execute(
            CLASSIFY,
            input={"chatroomId": self.room_id, "role": role, "classification": classification},
        )

    async def handoff(self, sender: str, target: str, content: str) -> dict[str, Any]:
        data = await self.s.execute(
            HANDOFF,
            input={
                "chatroomId": self.room_id,
                "senderRole": sender,
                "targetRole": target,
                "content": content,
            },
        )
        return data["sendHandoff"]

    async def add_backlog(self, content: str) -> dict[str, Any]:
        data = await self.s.execute(
            ADD_BACKLOG, input={"chatroomId": self.room_id, "content": content}
        )
        return dict(data["addBacklogTask"])

    async def tasks(self) -> list[dict[str, Any]]:
        return list((await self.s.execute(TASKS, c=self.room_id))["tasks"])

    async def task_status(self, content: str) -> str:
        for task in await self.tasks():
            if task["content"] == content:
                return str(task["status"])
        raise AssertionError(f"no task with content {content!r}")

    async def message_seqs(self) -> list[int]:
        nodes = (await self.s.execute(MESSAGES, c=self.room_id))["messages"]["nodes"]
        return [int(n["seq"]) for n in nodes]


async def new_guest(server: LiveServer, name: str = "Tester") -> str:
    async with gql_http(server) as s:
        return str((await s.execute(CREATE_GUEST, n=name))["createGuestSession"]["token"])


async def new_room(server: LiveServer, token: str, **fields: Any) -> dict[str, Any]:
    async with gql_http(server, token) as s:
        return dict((await s.execute(CREATE_ROOM, input=fields))["createChatroom"])


async def use_token(context: BrowserContext, token: str) -> None:
    """Sign the browser context in: every page of it starts with the token in localStorage."""
    key, value = json.dumps(TOKEN_KEY), json.dumps(token)
    await context.add_init_script(f"try {{ localStorage.setItem({key}, {value}); }} catch (e) {{}}")


async def wait_live(page: Page, within_ms: float = 10_000) -> None:
    """Wait until the room page's connection indicator says the feed is live."""
    await page.wait_for_selector("#conn[data-state=live]", timeout=within_ms)


async def seq_counts(page: Page) -> dict[int, int]:
    """How many feed items the page shows per message seq."""
    raw = await page.evaluate(
        """() => {
            const counts = {};
            for (const li of document.querySelectorAll('#feed > li')) {
                counts[li.dataset.seq] = (counts[li.dataset.seq] || 0) + 1;
            }
            return counts;
        }"""
    )
    return {int(k): int(v) for k, v in raw.items()}


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
