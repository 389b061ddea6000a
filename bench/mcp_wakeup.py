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
import contextlib
import os
import tempfile
import time
from pathlib import Path

from bench.cli import Cli
from bench.common import (
    Client,
    Server,
    bench_database,
    builder_holds,
    claim,
    handoff,
    latency_report,
    until_status,
)
from chatroom.cli.client import Api
from chatroom.cli.config import Target
from chatroom.cli.live import Waiter
from tests.mcp.support import Session, call, mcp_client, waiting_call

SAMPLE_TIMEOUT = 30.0


def claude_session(
    cli: Cli, room: str, role: str
) -> contextlib.AbstractAsyncContextManager[Session]:
    """`chatroom mcp --room R --role ROLE` introduced as Claude Code (the server pushes)."""
    command = [*cli.command, "mcp", "--room", room, "--role", role]
    return mcp_client(command, cli.env, client_name="claude-code")


async def _until_waiting(client: Client, room: str, role: str) -> None:
    await until_status(client, room, role, "WAITING", SAMPLE_TIMEOUT)


async def back_to_builder(reviewer: Session, client: Client, room: str) -> None:
    """The reviewer's session hands the baton back with its tool; the builder claims it."""
    back = await call(reviewer.client, "hand_off", message="Reviewed.", target_role="builder")
    await claim(client, room, back["new_task_id"], "builder")


async def measure(samples: int, warmup: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"push": [], "open call": [], "baseline: CLI Waiter": []}
    async with bench_database("chatroom_bench_mcp") as url, Server(url) as server:
        with tempfile.TemporaryDirectory(prefix="chatroom-bench-mcp-") as tmp:
            cli = Cli(server.base_url, Path(tmp) / "config")
            cli.login_guest()
            room, plain = cli.create_room(), cli.create_room()
            api = Api(Target(server.base_url, cli.token(), "env", False))
            async with Client(server.http_url, cli.token()) as client:
                await builder_holds(client, room)
                await builder_holds(client, plain)
                async with claude_session(cli, room, "reviewer") as reviewer:
                    # The session's first tool call starts the server's waiter for the role.
                    await call(reviewer.client, "room_status")
                    await _until_waiting(client, room, "reviewer")
                    for i in range(warmup + samples):
                        text = f"Sample {i}: please review."
                        # push: no call open; the desk claims and notifies.
                        await handoff(client, room, "builder", "reviewer", text)
                        answered = time.perf_counter()
                        at, push = await reviewer.timed_push(SAMPLE_TIMEOUT)
                        assert push.content == text
                        timed = [("push", at - answered)]
                        await back_to_builder(reviewer, client, room)
                        # open call: wait_for_task is waiting when the handoff commits.
                        open_call = await waiting_call(reviewer.client, timeout_seconds=60)
                        await handoff(client, room, "builder", "reviewer", text)
                        answered = time.perf_counter()
                        got = await asyncio.wait_for(open_call, SAMPLE_TIMEOUT)
                        assert got["body"] == text, got
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
    figures = {f"handoff commit -> {mode}": values for mode, values in figures.items()}
    print(latency_report("bench.mcp_wakeup", figures))


if __name__ == "__main__":
    main()
