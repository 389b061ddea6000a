"""Driving `chatroom mcp` with the MCP SDK's own stdio client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from mcp.client.extension import NotificationBinding
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import Implementation
from pydantic import BaseModel

from tests.cli.support import CLI, REPO_ROOT, Cli
from tests.support.api import connect
from tests.support.server import LiveServer

CHANNEL_METHOD = "notifications/claude/channel"
PUSH_TIMEOUT = 30.0


class ChannelParams(BaseModel):
    """The params of a `notifications/claude/channel` notification, as Claude Code reads them."""

    content: str
    meta: dict[str, str] = {}


class Session:
    """One `chatroom mcp` process seen through the SDK's client, and the channel notifications
    it pushed (in the order they arrived, each with its perf_counter arrival time)."""

    def __init__(
        self, client: ClientSession, pushes: asyncio.Queue[tuple[float, ChannelParams]]
    ) -> None:
        self.client = client
        self.pushes = pushes

    async def timed_push(self, limit: float = PUSH_TIMEOUT) -> tuple[float, ChannelParams]:
        """The next channel notification and when it arrived (waits for it)."""
        return await asyncio.wait_for(self.pushes.get(), limit)

    async def push(self, limit: float = PUSH_TIMEOUT) -> ChannelParams:
        """The next channel notification (waits for it)."""
        return (await self.timed_push(limit))[1]


@asynccontextmanager
async def mcp_client(
    command: Sequence[str], env: Mapping[str, str], client_name: str = "chatroom-tests"
) -> AsyncIterator[Session]:
    """`command` (a `chatroom ... mcp ...` command line) as a subprocess with `env`, driven by
    the SDK's stdio client and initialized. With client_name="claude-code" the server takes the
    client for Claude Code (its push channel). The tests and bench.mcp_wakeup start it here."""
    params = StdioServerParameters(
        command=command[0], args=list(command[1:]), env=dict(env), cwd=REPO_ROOT
    )
    pushes: asyncio.Queue[tuple[float, ChannelParams]] = asyncio.Queue()

    async def on_push(params: ChannelParams) -> None:
        await pushes.put((time.perf_counter(), params))

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
async def mcp_process(
    cli: Cli,
    *args: str,
    client_name: str = "chatroom-tests",
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Session]:
    """`chatroom mcp *args` as the CLI's logged-in user (see mcp_client)."""
    async with mcp_client([*CLI, "mcp", *args], cli.env(env), client_name) as session:
        yield session


@asynccontextmanager
async def mcp_session(cli: Cli, *args: str, **kwargs: Any) -> AsyncIterator[ClientSession]:
    async with mcp_process(cli, *args, **kwargs) as process:
        yield process.client


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def _succeeded(name: str, result: Any) -> dict[str, Any]:
    """A tool result that must not be an error; its structured content."""
    assert not result.is_error, f"{name} failed: {_text(result)}"
    data = result.structured_content or json.loads(_text(result))
    assert isinstance(data, dict)
    return data


async def call(session: ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
    """A tool call that must succeed; its structured result."""
    return _succeeded(name, await session.call_tool(name, arguments))


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
        return _succeeded(
            name, await session.call_tool(name, arguments, progress_callback=progress)
        )

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
    async with connect(server, token) as api:
        await api.wait_status(room_id, role, status, limit)
