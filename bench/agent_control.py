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
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cli import Cli
from bench.common import (
    Client,
    Server,
    bench_database,
    latency_report,
    subscribe,
)
from tests.runner.support import agent_command
from tests.support.operations import cli_operation

START = cli_operation("StartAgents")
STOP = cli_operation("StopAgents")
RESTART = cli_operation("RestartAgents")
MACHINE_AGENTS = cli_operation("MachineAgents")
LINE_TIMEOUT = 60.0


class Daemon:
    """`chatroom machine start`, its stdout lines as they come, each with its arrival time
    (tests.runner.support.RunnerProc keeps no times and finds a line again once seen)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        self.seen: list[str] = []  # every line, for the error when one never comes
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, cli: Cli) -> Daemon:
        return cls(await cli.spawn("machine", "start", stderr=asyncio.subprocess.STDOUT))

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.seen.append(line)
            await self.lines.put((time.perf_counter(), line))

    async def until(self, pattern: str) -> float:
        """The time the next line matching `pattern` arrived (earlier lines are dropped)."""
        regex = re.compile(pattern)
        while True:
            try:
                at, line = await asyncio.wait_for(self.lines.get(), LINE_TIMEOUT)
            except TimeoutError:
                tail = "\n".join(self.seen[-20:])
                raise RuntimeError(
                    f"the daemon printed no {pattern!r}; its last lines:\n{tail}"
                ) from None
            if regex.search(line):
                return at

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 30)
        await self._reader


class Watch:
    """`machineAgents` on a raw websocket (bench.common.subscribe): (arrival time, builder's
    state) per result."""

    def __init__(self) -> None:
        self.states: asyncio.Queue[tuple[float, str | None]] = asyncio.Queue()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, server: Server, token: str, machine_id: str) -> Watch:
        watch = cls()
        watch._task = asyncio.create_task(
            subscribe(
                server.ws_url,
                token,
                MACHINE_AGENTS,
                {"machineId": machine_id},
                watch._note,
                watch._subscribed.set,
            )
        )
        subscribed = asyncio.ensure_future(watch._subscribed.wait())
        await asyncio.wait({watch._task, subscribed}, return_when="FIRST_COMPLETED")
        subscribed.cancel()
        if watch._task.done():
            watch._task.result()  # raises why it could not subscribe
        return watch

    def _note(self, data: dict[str, Any]) -> None:
        agents = data["machineAgents"]["agents"]
        state = next((a["state"] for a in agents if a["role"] == "builder"), None)
        self.states.put_nowait((time.perf_counter(), state))

    def drain(self) -> None:
        while not self.states.empty():
            self.states.get_nowait()

    async def until(self, state: str) -> float:
        while True:
            try:
                at, seen = await asyncio.wait_for(self.states.get(), LINE_TIMEOUT)
            except TimeoutError:
                if self._task is not None and self._task.done():
                    self._task.result()  # raises why the subscription ended
                raise RuntimeError(f"machineAgents never showed the builder {state}") from None
            if seen == state:
                return at

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def one_round(
    client: Client, daemon: Daemon, watch: Watch, room: str, slot: dict[str, Any]
) -> list[tuple[str, float]]:
    """start, restart, stop the room's builder slot: (figure, seconds) of each."""
    roles = {"chatroomId": room, "roles": ["builder"]}
    watch.drain()
    await client.execute(START, input=slot)
    answered = time.perf_counter()
    seen = await daemon.until(rf"{room}/builder: WAITING")
    timed = [
        ("startAgents -> daemon waiting", seen - answered),
        ("startAgents -> server shows WAITING", await watch.until("WAITING") - answered),
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
    timed.append(("stopAgents -> server shows STOPPED", await watch.until("STOPPED") - answered))
    return timed


async def measure(rounds: int, warmup: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}  # figure -> seconds, in one_round's order
    async with bench_database("chatroom_bench_agents") as url, Server(url) as server:
        with tempfile.TemporaryDirectory(prefix="chatroom-bench-agents-") as tmp:
            cli = Cli(server.base_url, Path(tmp) / "config")
            cli.login_guest()
            room = cli.create_room()
            daemon = await Daemon.start(cli)
            try:
                await daemon.until(r"following this machine's agents")
                machine_id = cli.run_json("machine", "status", "--json")["machine"]["id"]
                slot = {
                    "chatroomId": room,
                    "roles": ["builder"],
                    "machineId": machine_id,
                    "harness": "command",
                    "command": agent_command(),
                    "workdir": tmp,
                }
                watch = await Watch.start(server, cli.token(), machine_id)
                try:
                    async with Client(server.http_url, cli.token()) as client:
                        for i in range(warmup + rounds):
                            timed = await one_round(client, daemon, watch, room, slot)
                            if i >= warmup:
                                for figure, seconds in timed:
                                    out.setdefault(figure, []).append(seconds)
                finally:
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
    print(latency_report("bench.agent_control", figures))


if __name__ == "__main__":
    main()
