"""How fast `chatroom mcp` wakes a Claude Code session: handoff commit -> channel notification.

    .venv/bin/python -m bench.mcp_wakeup [--samples 50] [--warmup 5]

Starts a real server (uvicorn subprocess on a loopback port, bench.common.Server) on a fresh
database of DATABASE_URL's server, or of an embedded PostgreSQL when DATABASE_URL is unset.
`chatroom mcp --room R --role reviewer` runs as a subprocess driven by the MCP SDK's own stdio
client, which introduces itself as Claude Code (clientInfo name `claude-code`), so the server
holds the reviewer's waiter and pushes each task as `notifications/claude/channel`.

Per sample this process sends `sendHandoff` builder -> reviewer over HTTP and times:
  push        from the mutation's HTTP response (the commit happened just before it) until the
              client received the channel notification. In between: NOTIFY -> the server's
              subscription -> the MCP server's waiter, its claimTask over HTTP, and the
              notification over stdio.
  open call   the same, with a wait_for_task call already open (the task is the call's
              result instead of a push).
  baseline    the CLI's own Waiter (what `wait-for-message` runs, without its process start
              and printing) in this process, in a second room: the same subscription and
              claim without MCP. The difference to it is what the MCP server adds.
Then the reviewer hands back through the hand_off tool and the builder claims over HTTP
(untimed). Prints p50 and p99 of each; timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.client.extension import NotificationBinding
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import Implementation
from pydantic import BaseModel

from bench.cli import Cli
from bench.common import (
    Client,
    Server,
    bench_database,
    builder_holds,
    claim,
    database_description,
    format_table,
    handoff,
    machine,
    percentile,
    until_status,
)
from chatroom.cli.client import Api
from chatroom.cli.config import Target
from chatroom.cli.live import Waiter

CHANNEL_METHOD = "notifications/claude/channel"
SAMPLE_TIMEOUT = 30.0


class Push(BaseModel):
    content: str
    meta: dict[str, str] = {}


@asynccontextmanager
async def claude_session(
    cli: Cli, room: str, role: str, pushes: asyncio.Queue[tuple[float, Push]]
) -> AsyncIterator[ClientSession]:
    async def on_push(params: Push) -> None:
        await pushes.put((time.perf_counter(), params))

    params = StdioServerParameters(
        command=cli.command[0],
        args=[*cli.command[1:], "mcp", "--room", room, "--role", role],
        env=cli.env,
    )
    binding = NotificationBinding(method=CHANNEL_METHOD, params_type=Push, handler=on_push)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(
            read,
            write,
            client_info=Implementation(name="claude-code", version="bench"),
            notification_bindings=[binding],
        ) as session,
    ):
        await session.initialize()
        yield session


async def _until_waiting(client: Client, room: str, role: str) -> None:
    await until_status(client, room, role, "WAITING", SAMPLE_TIMEOUT)


def _result(result: Any) -> dict[str, Any]:
    text = "".join(getattr(c, "text", "") for c in result.content)
    if result.is_error:
        raise RuntimeError(f"tool error: {text}")
    data: dict[str, Any] = result.structured_content or json.loads(text)
    return data


class Ready:
    """A progress callback that notes the server's "waiting as ..." progress notification."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.event.set()


async def back_to_builder(reviewer: ClientSession, client: Client, room: str) -> None:
    """The reviewer's session hands the baton back with its tool; the builder claims it."""
    back = _result(
        await reviewer.call_tool("hand_off", {"message": "Reviewed.", "target_role": "builder"})
    )
    await claim(client, room, back["new_task_id"], "builder")


async def measure(samples: int, warmup: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"push": [], "open call": [], "baseline: CLI Waiter": []}
    async with bench_database("chatroom_bench_mcp") as url, Server(url) as server:
        with tempfile.TemporaryDirectory(prefix="chatroom-bench-mcp-") as tmp:
            cli = Cli(server.base_url, Path(tmp) / "config")
            cli.run("auth", "login", "--guest", "--name", "Bench")
            room = json.loads(cli.run("create", "--json").stdout)["room_id"]
            plain = json.loads(cli.run("create", "--json").stdout)["room_id"]
            api = Api(Target(server.base_url, cli.token(), "env", False))
            async with Client(server.http_url, cli.token()) as client:
                await builder_holds(client, room)
                await builder_holds(client, plain)
                pushes: asyncio.Queue[tuple[float, Push]] = asyncio.Queue()
                async with claude_session(cli, room, "reviewer", pushes) as reviewer:
                    # The session's first tool call starts the server's waiter for the role.
                    _result(await reviewer.call_tool("room_status", {}))
                    await _until_waiting(client, room, "reviewer")
                    for i in range(warmup + samples):
                        text = f"Sample {i}: please review."
                        # push: no call open; the desk claims and notifies.
                        await handoff(client, room, "builder", "reviewer", text)
                        answered = time.perf_counter()
                        at, push = await asyncio.wait_for(pushes.get(), SAMPLE_TIMEOUT)
                        assert push.content == text
                        timed = [("push", at - answered)]
                        await back_to_builder(reviewer, client, room)
                        # open call: wait_for_task is waiting when the handoff commits.
                        ready = Ready()
                        call = asyncio.ensure_future(
                            reviewer.call_tool(
                                "wait_for_task", {"timeout_seconds": 60}, progress_callback=ready
                            )
                        )
                        await asyncio.wait_for(ready.event.wait(), SAMPLE_TIMEOUT)
                        await handoff(client, room, "builder", "reviewer", text)
                        answered = time.perf_counter()
                        assert _result(await asyncio.wait_for(call, SAMPLE_TIMEOUT))["body"] == text
                        timed.append(("open call", time.perf_counter() - answered))
                        await back_to_builder(reviewer, client, room)
                        # baseline: the CLI's Waiter in this process (what wait-for-message
                        # runs, without its process start and printing), in another room.
                        waiter = Waiter(api, plain, "reviewer")
                        work = asyncio.ensure_future(waiter.run())
                        await _until_waiting(client, plain, "reviewer")
                        await handoff(client, plain, "builder", "reviewer", text)
                        answered = time.perf_counter()
                        outcome = await asyncio.wait_for(work, SAMPLE_TIMEOUT)
                        assert outcome.event == "task"
                        timed.append(("baseline: CLI Waiter", time.perf_counter() - answered))
                        new = await handoff(client, plain, "reviewer", "builder", "Reviewed.")
                        await claim(client, plain, new["newTask"]["id"], "builder")
                        if i >= warmup:
                            for mode, seconds in timed:
                                out[mode].append(seconds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=50, help="timed deliveries per mode")
    parser.add_argument("--warmup", type=int, default=5, help="untimed deliveries first")
    args = parser.parse_args()
    os.environ.setdefault("CHATROOM_RETRY_SECONDS", "10")
    figures = asyncio.run(measure(args.samples, args.warmup))
    print(f"bench.mcp_wakeup: {database_description()}; {machine()}")
    rows = [
        (
            f"handoff commit -> {mode}",
            str(len(values)),
            f"{percentile(values, 50) * 1000:.1f} ms",
            f"{percentile(values, 99) * 1000:.1f} ms",
        )
        for mode, values in figures.items()
    ]
    print(format_table(("figure", "n", "p50", "p99"), rows))


if __name__ == "__main__":
    main()
