"""What the runner does when an agent misbehaves: each fault of SPEC §10, with the command
harness running the scripted agent program in one of its modes."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.cli.support import Cli, logged_in, until_waiting
from tests.conftest import StartServer
from tests.runner.support import (
    RunnerProc,
    agent_command,
    api,
    feed,
    handoffs,
    start_runner,
    tasks,
    until,
)
from tests.support.gql_client import expect_error, gql_http
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

ROUTE = "builder=reviewer"


async def _builder(cli: Cli, room: str, workdir: Path, mode: str, *args: str) -> RunnerProc:
    return await start_runner(
        cli,
        room,
        "--harness=command",
        f"--command={agent_command()}",
        f"--workdir={workdir}",
        "--role=builder",
        *args,
        env={"AGENT_MODE": mode, "AGENT_ROUTE": ROUTE},
    )


def _runs(workdir: Path) -> list[str]:
    path = workdir / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


async def _task(server: LiveServer, cli: Cli, room: str) -> dict[str, object]:
    (only,) = await tasks(server, cli.token(), room)
    return only


async def test_a_harness_that_exits_non_zero_is_restarted_and_finishes(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    runner = await _builder(cli, room, workdir, "fail-once")
    try:
        await cli.send(room, "Build it.")
        await runner.line(r"builder: BACKOFF it exited with code 1; restarting")

        await until(_handed_off(live_server, cli, room), "the builder handed off after restarting")
        assert len(_runs(workdir)) == 2
    finally:
        assert await runner.stop() == 0


async def test_exit_zero_without_a_handoff_is_nudged_twice_then_needs_attention(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    runner = await _builder(cli, room, workdir, "lazy")
    try:
        await cli.send(room, "Build it.")
        await runner.line(r"builder: NEEDS_ATTENTION not handed off after 2 nudges")
        assert runner.count(r"builder: WORKING nudge \d of 2") == 2
        runs = _runs(workdir)
        assert len(runs) == 3
        # The nudges name the problem; the program (no session) gets the task again as well.
        assert "was not handed off" not in runs[0] and all(
            "was not handed off" in r for r in runs[1:]
        )
        task = await _task(live_server, cli, room)
        assert (task["status"], task["assignedTo"]) == ("IN_PROGRESS", "builder")

        async def told() -> list[dict[str, object]]:
            return [
                m
                for m in await feed(live_server, cli.token(), room)
                if m["senderRole"] == "builder" and m["type"] == "MESSAGE"
            ]

        (note,) = await until(told, "the room got the runner's message")
        text = str(note["content"])
        assert "needs attention" in text and str(task["id"]) in text
        assert "ending without a handoff" in text  # the output's last lines
        # The server has the slot's state, as its daemon reported it.
        await until(_state(cli, room, "NEEDS_ATTENTION"), "the server shows NEEDS_ATTENTION")
        status = await cli.run("agents", "status", room)
        assert "builder: NEEDS_ATTENTION (desired RUNNING)" in status.ok().out
        # The person decides: cancelling the task frees the slot for the role's next task.
        waiting = runner.count(r"builder: WAITING")
        await _cancel(live_server, cli, room, str(task["id"]))

        await until(
            _more(runner, r"builder: WAITING", waiting),
            "the slot waits again after the task was cancelled",
        )
    finally:
        assert await runner.stop() == 0


async def test_a_hung_harness_is_stopped_at_the_task_limit_the_same_way(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    runner = await _builder(cli, room, workdir, "hang", "--task-timeout=1s")
    try:
        await cli.send(room, "Build it.")
        line = await runner.line(r"builder: NEEDS_ATTENTION")
        assert "per-task time limit" in line
        assert len(_runs(workdir)) == 3
        task = await _task(live_server, cli, room)
        assert (task["status"], task["assignedTo"]) == ("IN_PROGRESS", "builder")
    finally:
        assert await runner.stop() == 0


async def test_five_crashes_open_the_circuit(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    runner = await _builder(cli, room, workdir, "crash")
    try:
        await cli.send(room, "Build it.")
        await runner.line(r"builder: CIRCUIT_OPEN 5 failures in 10 minutes")
        assert len(_runs(workdir)) == 5
        assert runner.count(r"builder: BACKOFF it exited with code 3") == 4
        slot = await until(_state(cli, room, "CIRCUIT_OPEN"), "the server shows CIRCUIT_OPEN")
        assert "exited with code 3" in slot["last_error"]
        assert (slot["desired_state"], slot["machine_online"]) == ("RUNNING", True)
        task = await _task(live_server, cli, room)
        assert (task["status"], task["assignedTo"]) == ("IN_PROGRESS", "builder")
        messages = await feed(live_server, cli.token(), room)
        assert any("circuit opened" in m["content"] for m in messages)
    finally:
        assert await runner.stop() == 0


async def test_sigterm_stops_the_harness_and_leaves_the_task_with_the_role(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    runner = await _builder(cli, room, workdir, "hang")
    await cli.send(room, "Build it.")
    await until(_started(workdir), "the agent started")
    assert await runner.stop(signal.SIGTERM) == 0
    assert "stopping: the agents get SIGTERM" in runner.out
    task = await _task(live_server, cli, room)
    assert (task["status"], task["assignedTo"]) == ("IN_PROGRESS", "builder")
    assert len(_runs(workdir)) == 1


async def test_a_sigkilled_runner_started_again_resumes_the_task_and_works_it_once(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    first = await _builder(cli, room, workdir, "block-once")
    await cli.send(room, "Build it.")
    await until(_started(workdir), "the agent started")
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = await _builder(cli, room, workdir, "block-once")
    try:
        await second.line(r"builder: WORKING task \S+ \(resumed after a restart\)")

        await until(_handed_off(live_server, cli, room), "the resumed task was handed off")
        runs = _runs(workdir)
        assert len(runs) == 2 and runs[0].split()[0] == runs[1].split()[0]
        task = next(
            t for t in await tasks(live_server, cli.token(), room) if t["id"] == runs[0].split()[0]
        )
        assert task["status"] == "COMPLETED" and task["attempt"] == 1
    finally:
        assert await second.stop() == 0


def _state(cli: Cli, room: str, state: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    """A check: the builder's slot as `agents status --json` shows it, once in `state`."""

    async def check() -> dict[str, Any] | None:
        agents = (await cli.json("agents", "status", room))["agents"]
        slot: dict[str, Any] = next(a for a in agents if a["role"] == "builder")
        return slot if slot["state"] == state else None

    return check


def _handed_off(server: LiveServer, cli: Cli, room: str) -> Callable[[], Awaitable[bool]]:
    """A check: the builder's one handoff (to the reviewer) is the room's only one."""

    async def check() -> bool:
        return handoffs(await feed(server, cli.token(), room)) == [("builder", "reviewer")]

    return check


def _started(workdir: Path) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(_runs(workdir))

    return check


def _gone(pid: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    return check


def _more(runner: RunnerProc, pattern: str, before: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return runner.count(pattern) > before

    return check


async def _cancel(server: LiveServer, cli: Cli, room: str, task_id: str) -> None:
    await api(
        server,
        cli.token(),
        "mutation($i: TaskRefInput!) { cancelTask(input: $i) { id status } }",
        i={"chatroomId": room, "taskId": task_id},
    )


async def test_the_runner_rides_out_a_server_restart(
    tmp_path: Path, db: PgDatabase, start_server: StartServer, workdir: Path
) -> None:
    server = await start_server(db.url)
    cli = await logged_in(server, tmp_path / "cfg")
    cli.extra_env["CHATROOM_RUNNER_BACKOFF_SECONDS"] = "0.05"
    room = await cli.create_room()
    runner = await start_runner(
        cli,
        room,
        "--harness=command",
        f"--command={agent_command()}",
        f"--workdir={workdir}",
        env={"AGENT_ROUTE": "builder=reviewer,reviewer=user"},
    )
    try:
        await until_waiting(server, cli.token(), room, "builder")
        await server.restart()
        await cli.send(room, "Build it after the restart.")

        async def done() -> list[tuple[str, str]]:
            return handoffs(await feed(server, cli.token(), room))

        try:
            await until(lambda: _count(done, ("reviewer", "user")), "the chain reached the user")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{runner.out}") from None
        assert await done() == [("builder", "reviewer"), ("reviewer", "user")]
    finally:
        assert await runner.stop() == 0, runner.out


async def _count(
    check: Callable[[], Awaitable[list[tuple[str, str]]]], pair: tuple[str, str]
) -> bool:
    return pair in await check()


async def test_a_task_taken_back_mid_run_stops_the_harness(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    runner = await _builder(cli, room, workdir, "hang")
    try:
        await cli.send(room, "Build it.")
        await until(_started(workdir), "the agent started")
        task = await _task(live_server, cli, room)
        waiting = runner.count(r"builder: WAITING")
        await _cancel(live_server, cli, room, str(task["id"]))
        await runner.line(r"builder: WORKING the task was taken back: stopping the harness")

        await until(_more(runner, r"builder: WAITING", waiting), "the slot waits again")
        assert len(_runs(workdir)) == 1
        assert "NEEDS_ATTENTION" not in runner.out
    finally:
        assert await runner.stop() == 0, runner.out


async def test_a_second_runner_for_the_role_takes_over_and_the_first_stops(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    first = await _builder(cli, room, workdir, "block-once")
    await cli.send(room, "Build it.")
    await until(_started(workdir), "the first runner's agent started")
    second = await _builder(cli, room, workdir, "block-once")
    try:
        # The newer daemon claimed the slot (newest claim wins); the first is told and stops its
        # harness, whose token the claim revoked: it cannot hand the task off any more.
        await first.line(rf"builder: SUPERSEDED another daemon took {room}/builder over")
        first_pid, first_token = (workdir / "tokens.log").read_text().split()[:2]
        await until(_gone(int(first_pid)), "the first runner's harness ended")
        async with gql_http(live_server, first_token) as session:
            code, _ = await expect_error(session.execute("query { me { id } }"))
        assert code == "UNAUTHENTICATED"
        assert await first.stop() == 0, first.out

        try:
            await until(_handed_off(live_server, cli, room), "the second runner finished the task")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{second.out}") from None
        runs = _runs(workdir)
        assert len(runs) == 2 and runs[0].split()[0] == runs[1].split()[0]
        await second.line(r"builder: WORKING task \S+ \(resumed after a restart\)")
    finally:
        assert await second.stop() == 0, second.out
