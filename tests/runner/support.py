"""Driving the daemon (`chatroom machine start`, `chatroom agents run`) as a subprocess, and
reading the room it works in."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from tests.agents.common import agent_events
from tests.cli.support import CLI, REPO_ROOT, Cli
from tests.support.gql_client import gql_http
from tests.support.server import LiveServer

AGENT = Path(__file__).with_name("agent.py")
LIMIT = 60.0


class RunnerProc:
    """One `chatroom agents run`, its stdout collected line by line as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            async with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def line(self, pattern: str, limit: float = LIMIT) -> str:
        """The first stdout line matching `pattern` (waits for it)."""
        regex = re.compile(pattern)

        async def found() -> str:
            async with self._changed:
                while True:
                    for text in self.lines:
                        if regex.search(text):
                            return text
                    if self._reader.done():
                        raise AssertionError(f"runner ended without {pattern!r}:\n{self.out}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(found(), limit)
        except TimeoutError:
            raise AssertionError(f"no line {pattern!r} in {limit} s:\n{self.out}") from None

    @property
    def out(self) -> str:
        return "\n".join(self.lines)

    def count(self, pattern: str) -> int:
        return sum(1 for text in self.lines if re.search(pattern, text))

    async def stop(self, sig: int = signal.SIGTERM, limit: float = 30.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        rc = await asyncio.wait_for(self.proc.wait(), limit)
        await self._reader
        return rc


async def start_runner(
    cli: Cli, room: str, *args: str, env: Mapping[str, str] | None = None
) -> RunnerProc:
    return await start_daemon(cli, "agents", "run", room, *args, env=env)


async def start_daemon(cli: Cli, *args: str, env: Mapping[str, str] | None = None) -> RunnerProc:
    """`chatroom <args>` left running (a daemon: `machine start`, `agents run`)."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=cli.env(env),
        cwd=REPO_ROOT,
    )
    return RunnerProc(proc)


def agent_command() -> str:
    return f"{sys.executable} {AGENT} {{prompt_file}}"


async def api(server: LiveServer, token: str, doc: str, **variables: Any) -> dict[str, Any]:
    async with gql_http(server, token) as session:
        data: dict[str, Any] = await session.execute(doc, **variables)
    return data


async def tasks(server: LiveServer, token: str, room: str) -> list[dict[str, Any]]:
    doc = "query($c: ID!) { tasks(chatroomId: $c) { id status assignedTo attempt content } }"
    found: list[dict[str, Any]] = (await api(server, token, doc, c=room))["tasks"]
    return found


async def feed(server: LiveServer, token: str, room: str) -> list[dict[str, Any]]:
    doc = (
        "query($c: ID!) { messages(chatroomId: $c, first: 200) { nodes { seq senderRole "
        "targetRole type content } } }"
    )
    nodes: list[dict[str, Any]] = (await api(server, token, doc, c=room))["messages"]["nodes"]
    return nodes


async def activities(server: LiveServer, token: str, room: str, role: str) -> list[str]:
    """Every activity line the room's log holds for `role`'s agent slot: the AGENT_UPDATED
    events the daemon's reports wrote."""
    slots = await agent_events(server, token, room)
    return [slot["activity"] for slot in slots if slot["role"] == role and slot["activity"]]


async def until(check: Callable[[], Awaitable[Any]], what: str, limit: float = LIMIT) -> Any:
    """Re-check the server's state until `check()` is truthy (the fence is the state itself)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.1)


def handoffs(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["senderRole"], m["targetRole"]) for m in messages if m["type"] == "HANDOFF"]
