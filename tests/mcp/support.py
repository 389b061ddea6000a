"""Driving `chatroom mcp` with the MCP SDK's own stdio client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from mcp.client.extension import NotificationBinding
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import Implementation
from pydantic import BaseModel

from tests.cli.support import CLI, REPO_ROOT, Cli
from tests.support.gql_client import gql_http
from tests.support.server import LiveServer

CHANNEL_METHOD = "notifications/claude/channel"
PUSH_TIMEOUT = 30.0


class ChannelParams(BaseModel):
    """The params of a `notifications/claude/channel` notification, as Claude Code reads them."""

    content: str
    meta: dict[str, str] = {}


class Session:
    """One `chatroom mcp` process seen through the SDK's client, and the channel notifications
    it pushed (in the order they arrived)."""

    def __init__(self, client: ClientSession, pushes: asyncio.Queue[ChannelParams]) -> None:
        self.client = client
        self.pushes = pushes

    async def push(self, limit: float = PUSH_TIMEOUT) -> ChannelParams:
        """The next channel notification (waits for it)."""
        return await asyncio.wait_for(self.pushes.get(), limit)


@asynccontextmanager
async def mcp_process(
    cli: Cli,
    *args: str,
    client_name: str = "chatroom-tests",
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Session]:
    """`chatroom mcp *args` as a subprocess, initialized, as the CLI's logged-in user. With
    client_name="claude-code" the server takes the client for Claude Code (its push channel)."""
    params = StdioServerParameters(
        command=CLI[0], args=[*CLI[1:], "mcp", *args], env=cli.env(env), cwd=REPO_ROOT
    )
    pushes: asyncio.Queue[ChannelParams] = asyncio.Queue()

    async def on_push(params: ChannelParams) -> None:
        await pushes.put(params)

    binding = NotificationBinding(method=CHANNEL_METHOD, params_type=ChannelParams, handler=on_push)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(
            read,
            write,
            client_info=Implementation(name=client_name, version="0"),
            notification_bindings=[binding],
        ) as session,
    ):
        await session.initialize()
        yield Session(session, pushes)


@asynccontextmanager
async def mcp_session(cli: Cli, *args: str, **kwargs: Any) -> AsyncIterator[ClientSession]:
    async with mcp_process(cli, *args, **kwargs) as process:
        yield process.client


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def call(session: ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
    """A tool call that must succeed; its structured result."""
    result = await session.call_tool(name, arguments)
    assert not result.is_error, f"{name} failed: {_text(result)}"
    data = result.structured_content or json.loads(_text(result))
    assert isinstance(data, dict)
    return data


async def call_error(session: ClientSession, name: str, **arguments: Any) -> str:
    """A tool call that must fail as a tool error; its text (never a traceback)."""
    result = await session.call_tool(name, arguments)
    text = _text(result)
    assert result.is_error, f"{name} succeeded: {text}"
    assert "Traceback" not in text
    return text


async def waiting_call(
    session: ClientSession, name: str = "wait_for_task", **arguments: Any
) -> asyncio.Task[dict[str, Any]]:
    """Start a wait_for_task call; return once the server said it is waiting (its progress
    notification), with the call still open."""
    started = asyncio.Event()

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async def run() -> dict[str, Any]:
        result = await session.call_tool(name, arguments, progress_callback=progress)
        assert not result.is_error, f"{name} failed: {_text(result)}"
        data = result.structured_content or json.loads(_text(result))
        assert isinstance(data, dict)
        return data

    task = asyncio.ensure_future(run())
    waited = asyncio.ensure_future(started.wait())
    await asyncio.wait({task, waited}, timeout=PUSH_TIMEOUT, return_when="FIRST_COMPLETED")
    waited.cancel()
    if task.done():
        task.result()  # raises what the call raised
        raise AssertionError(f"{name} ended before it was waiting: {task.result()}")
    assert started.is_set(), f"{name} never reported that it was waiting"
    return task


async def until_status(
    server: LiveServer, token: str, room_id: str, role: str, status: str, limit: float = 15.0
) -> None:
    """Poll until the role's participant has `status` (e.g. IDLE once its waiter is gone)."""
    query = "query($id: ID!) { chatroom(id: $id) { participants { role status } } }"
    deadline = asyncio.get_running_loop().time() + limit
    async with gql_http(server, token) as session:
        while True:
            data = await session.execute(query, id=room_id)
            states = {p["role"]: p["status"] for p in data["chatroom"]["participants"]}
            if states.get(role) == status:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{role} is {states.get(role)}, never {status}")
            await asyncio.sleep(0.05)
