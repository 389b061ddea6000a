"""How fast a machine daemon follows `agents start / restart / stop`: mutation -> the daemon acts.

    .venv/bin/python -m bench.agent_control [--rounds 30] [--warmup 3]

Starts a real server (uvicorn subprocess on a loopback port, bench.common.Server) on a fresh
database of DATABASE_URL's server, or of an embedded PostgreSQL when DATABASE_URL is unset, and
`chatroom machine start` (the daemon, a subprocess with a config dir of its own). One slot, the
room's builder, with the `command` harness (no task is sent: the slot only waits).

Per round this process sends, over HTTP, the CLI's own documents and times from each mutation's
HTTP response (the commit happened just before it) until the daemon's stdout shows the line that
says it acted:

  startAgents    -> `<room>/builder: WAITING`: the daemon saw the change (machineAgents), claimed
                    the slot (claimAgentSlot), started the slot and its taskAvailable waiter
  restartAgents  -> `WAITING` again: the running slot stopped, claimed anew, waiting again
  stopAgents     -> `<room>/builder: STOPPED`: the change seen, the slot ended

and, for start and stop, until the server shows the state the daemon reported (reportAgentState)
to a `machineAgents` subscriber (a raw websocket in this process; the figure includes that
subscription's own wake-up after the report's commit).
Prints p50 and p99 of each; timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cli import Cli
from bench.common import (
    Client,
    Server,
    bench_database,
    database_description,
    format_table,
    machine,
    percentile,
    ws_subscriber,
)
from tests.support.operations import cli_operation

START = cli_operation("StartAgents")
STOP = cli_operation("StopAgents")
RESTART = cli_operation("RestartAgents")
MACHINE_AGENTS = cli_operation("MachineAgents")
AGENT = Path(__file__).resolve().parents[1] / "tests" / "runner" / "agent.py"
LINE_TIMEOUT = 60.0


class Daemon:
    """`chatroom machine start`, its stdout lines as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, cli: Cli) -> Daemon:
        proc = await asyncio.create_subprocess_exec(
            *cli.command,
            "machine",
            "start",
            env=cli.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            await self.lines.put((time.perf_counter(), raw.decode(errors="replace").rstrip()))

    async def until(self, pattern: str) -> float:
        """The time the next line matching `pattern` arrived (earlier lines are dropped)."""
        regex = re.compile(pattern)
        while True:
            at, line = await asyncio.wait_for(self.lines.get(), LINE_TIMEOUT)
            if regex.search(line):
                return at

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 30)
        await self._reader


class Watch:
    """`machineAgents` on a raw websocket: (arrival time, builder's state) per result."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.states: asyncio.Queue[tuple[float, str | None]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, server: Server, token: str, machine_id: str) -> Watch:
        ws = await ws_subscriber(server.ws_url, token)
        payload = {"query": MACHINE_AGENTS, "variables": {"machineId": machine_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        return cls(ws)

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if message.get("type") != "next":
                continue
            agents = message["payload"]["data"]["machineAgents"]["agents"]
            state = next((a["state"] for a in agents if a["role"] == "builder"), None)
            await self.states.put((time.perf_counter(), state))

    def drain(self) -> None:
        while not self.states.empty():
            self.states.get_nowait()

    async def until(self, state: str) -> float:
        while True:
            at, seen = await asyncio.wait_for(self.states.get(), LINE_TIMEOUT)
            if seen == state:
                return at

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.ws.close()


async def measure(rounds: int, warmup: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "startAgents -> daemon waiting": [],
        "startAgents -> server shows WAITING": [],
        "restartAgents -> daemon waiting again": [],
        "stopAgents -> daemon stopped": [],
        "stopAgents -> server shows STOPPED": [],
    }
    async with bench_database("chatroom_bench_agents") as url, Server(url) as server:
        with tempfile.TemporaryDirectory(prefix="chatroom-bench-agents-") as tmp:
            cli = Cli(server.base_url, Path(tmp) / "config")
            cli.run("auth", "login", "--guest", "--name", "Bench")
            room = json.loads(cli.run("create", "--json").stdout)["room_id"]
            daemon = await Daemon.start(cli)
            try:
                await daemon.until(r"following this machine's agents")
                machine_id = json.loads(cli.run("machine", "status", "--json").stdout)["machine"][
                    "id"
                ]
                slot = {
                    "chatroomId": room,
                    "roles": ["builder"],
                    "machineId": machine_id,
                    "harness": "command",
                    "command": f"{sys.executable} {AGENT} {{prompt_file}}",
                    "workdir": tmp,
                }
                roles = {"chatroomId": room, "roles": ["builder"]}
                watch = await Watch.start(server, cli.token(), machine_id)
                async with Client(server.http_url, cli.token()) as client:
                    for i in range(warmup + rounds):
                        watch.drain()
                        await client.execute(START, input=slot)
                        answered = time.perf_counter()
                        seen = await daemon.until(rf"{room}/builder: WAITING")
                        timed = [
                            ("startAgents -> daemon waiting", seen - answered),
                            (
                                "startAgents -> server shows WAITING",
                                await watch.until("WAITING") - answered,
                            ),
                        ]
                        await client.execute(RESTART, input=roles)
                        answered = time.perf_counter()
                        seen = await daemon.until(rf"{room}/builder: WAITING")
                        timed.append(("restartAgents -> daemon waiting again", seen - answered))
                        watch.drain()
                        await client.execute(STOP, input=roles)
                        answered = time.perf_counter()
                        seen = await daemon.until(rf"{room}/builder: STOPPED")
                        timed.append(("stopAgents -> daemon stopped", seen - answered))
                        reported = await watch.until("STOPPED")
                        timed.append(("stopAgents -> server shows STOPPED", reported - answered))
                        if i >= warmup:
                            for figure, seconds in timed:
                                out[figure].append(seconds)
                await watch.close()
            finally:
                await daemon.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed start/restart/stop rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    args = parser.parse_args()
    os.environ.setdefault("CHATROOM_RETRY_SECONDS", "10")
    figures = asyncio.run(measure(args.rounds, args.warmup))
    print(f"bench.agent_control: {database_description()}; {machine()}")
    rows = [
        (
            figure,
            str(len(values)),
            f"{percentile(values, 50) * 1000:.1f} ms",
            f"{percentile(values, 99) * 1000:.1f} ms",
        )
        for figure, values in figures.items()
    ]
    print(format_table(("figure", "n", "p50", "p99"), rows))


if __name__ == "__main__":
    main()
