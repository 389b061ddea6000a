"""The machine daemon and the `agents` commands that steer it from another process: slots set on
the server (`agents start / stop / restart`), followed by `chatroom machine start`, shown by
`agents status` and `machine status / list` as the server sees them. The command harness runs
the scripted agent program (tests/runner/agent.py)."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import Cli
from tests.runner.support import (
    RunnerProc,
    agent_command,
    feed,
    handoffs,
    start_daemon,
    tasks,
    until,
)
from tests.support.gql_client import expect_error, gql_http
from tests.support.server import LiveServer

PAIR = "builder=reviewer,reviewer=user"


def _agents_start(workdir: Path, *args: str) -> list[str]:
    return [
        "--harness=command",
        f"--command={agent_command()}",
        f"--workdir={workdir}",
        *args,
    ]


def _printed(text: str, command: str) -> str:
    """The `chatroom <command> ...` the CLI printed between backticks."""
    match = re.search(rf"`(chatroom {command}[^`]*)`", text)
    assert match, f"no `chatroom {command}` in:\n{text}"
    return match.group(1)


async def _daemon_from(cli: Cli, printed: str, env: dict[str, str]) -> RunnerProc:
    """Run a printed `chatroom ...` daemon command as it is (the CLI stands for `chatroom`)."""
    words = shlex.split(printed)
    assert words[0] == "chatroom", printed
    return await start_daemon(cli, *words[1:], env=env)


def _slot(cli: Cli, room: str, role: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def read() -> dict[str, Any]:
        agents = (await cli.json("agents", "status", room))["agents"]
        found: dict[str, Any] = next(a for a in agents if a["role"] == role)
        return found

    return read


def _in_state(
    cli: Cli, room: str, role: str, state: str
) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    async def check() -> dict[str, Any] | None:
        slot = await _slot(cli, room, role)()
        return slot if slot["state"] == state else None

    return check


def _log(workdir: Path, name: str) -> list[str]:
    path = workdir / name
    return path.read_text().splitlines() if path.exists() else []


async def test_machine_start_then_agents_start_from_another_process_serve_the_pair_flow(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    # No machine yet: the error names the command to run first, and that command works.
    refused = await cli.run("agents", "start", room, *_agents_start(workdir))
    assert refused.rc == 2, refused
    daemon = await _daemon_from(cli, _printed(refused.err, "machine start"), {"AGENT_ROUTE": PAIR})
    try:
        await daemon.line(r"following this machine's agents")
        started = (await cli.run("agents", "start", room, *_agents_start(workdir))).ok()
        assert "builder: " in started.out and "(desired RUNNING)" in started.out, started
        await daemon.line(rf"{room}/builder: WAITING")
        await daemon.line(rf"{room}/reviewer: WAITING")
        await until(_in_state(cli, room, "reviewer", "WAITING"), "the server shows WAITING")

        await cli.send(room, "First: add a greeting.")
        await cli.send(room, "Second: add a farewell.")

        async def both_done() -> bool:
            pairs = handoffs(await feed(live_server, cli.token(), room))
            return pairs.count(("reviewer", "user")) == 2

        try:
            await until(both_done, "both requests handed back to the user")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{daemon.out}") from None
        assert (
            handoffs(await feed(live_server, cli.token(), room))
            == [
                ("builder", "reviewer"),
                ("reviewer", "user"),
            ]
            * 2
        )
        runs = _log(workdir, "runs.log")
        assert [r.split()[1] for r in runs] == ["builder", "reviewer", "builder", "reviewer"]

        # `agents status` is the server's view: both slots, on this machine, online.
        builder = await until(_in_state(cli, room, "builder", "WAITING"), "builder WAITING")
        assert builder["machine_online"] is True and builder["harness"] == "command"
        assert builder["desired_state"] == "RUNNING" and builder["workdir"] == str(workdir)
        human = (await cli.run("agents", "status", room)).ok().out
        assert re.search(r"builder: WAITING \(desired RUNNING\) on \S+ \(online\), command", human)
        status = await cli.json("machine", "status")
        assert status["machine"]["online"] is True
        assert {a["role"] for a in status["machine"]["agents"]} == {"builder", "reviewer"}
        listed = (await cli.run("machine", "list")).ok().out
        assert "(this computer): online; harnesses:" in listed and "command" in listed
    finally:
        assert await daemon.stop() == 0, daemon.out
    assert "[runner] stopped" in daemon.out
    # Stopped with the daemon, still desired RUNNING: the next daemon picks them up.
    builder = await _slot(cli, room, "builder")()
    assert (builder["state"], builder["desired_state"]) == ("STOPPED", "RUNNING")


async def test_agents_stop_during_a_task_stops_the_harness_and_revokes_its_token(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    daemon = await start_daemon(cli, "machine", "start", env={"AGENT_MODE": "hang"})
    try:
        await daemon.line(r"following this machine's agents")
        (await cli.run("agents", "start", room, "--role=builder", *_agents_start(workdir))).ok()
        await cli.send(room, "Build it.")
        await until(lambda: _has(workdir, "tokens.log"), "the agent started")
        ((pid, token),) = (line.split() for line in _log(workdir, "tokens.log"))
        await until(_in_state(cli, room, "builder", "WORKING"), "the server shows WORKING")

        stopped = await cli.json("agents", "stop", room, "--role=builder")
        assert [a["desired_state"] for a in stopped["agents"]] == ["STOPPED"]
        await daemon.line(rf"{room}/builder: stopping: stopped on the server")
        await daemon.line(rf"{room}/builder: STOPPED")
        await until(_in_state(cli, room, "builder", "STOPPED"), "the server shows STOPPED")
        assert not _alive(int(pid))
        async with gql_http(live_server, token) as session:
            code, _ = await expect_error(session.execute("query { me { id } }"))
        assert code == "UNAUTHENTICATED"
        (task,) = await tasks(live_server, cli.token(), room)
        assert (task["status"], task["assignedTo"]) == ("IN_PROGRESS", "builder")
        assert len(_log(workdir, "runs.log")) == 1
    finally:
        assert await daemon.stop() == 0, daemon.out


async def test_agents_restart_closes_an_open_circuit_and_the_task_is_resumed(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    env = {"AGENT_MODE": "crash-five", "AGENT_ROUTE": PAIR}
    daemon = await start_daemon(cli, "machine", "start", env=env)
    try:
        await daemon.line(r"following this machine's agents")
        (await cli.run("agents", "start", room, "--role=builder", *_agents_start(workdir))).ok()
        await cli.send(room, "Build it.")
        await daemon.line(rf"{room}/builder: CIRCUIT_OPEN 5 failures in 10 minutes")
        slot = await until(_in_state(cli, room, "builder", "CIRCUIT_OPEN"), "CIRCUIT_OPEN")
        assert slot["generation"] == 1
        human = (await cli.run("agents", "status", room)).ok().out
        assert "circuit open: `chatroom agents restart" in human

        # The room message names the restart command; run it as printed.
        notes = [m for m in await feed(live_server, cli.token(), room) if m["type"] == "MESSAGE"]
        (note,) = (m for m in notes if "circuit opened" in m["content"])
        restart = (await cli.bash(_printed(note["content"], "agents restart"))).ok()
        assert "builder: " in restart.out
        await daemon.line(rf"{room}/builder: serving with command in \S+ \(generation 2\)")
        await daemon.line(rf"{room}/builder: WORKING task \S+ \(resumed after a restart\)")

        async def handed_off() -> bool:
            return handoffs(await feed(live_server, cli.token(), room)) == [("builder", "reviewer")]

        await until(handed_off, "the resumed task was handed off once")
        runs = _log(workdir, "runs.log")
        assert len(runs) == 6 and len({r.split()[0] for r in runs}) == 1
    finally:
        assert await daemon.stop() == 0, daemon.out


async def test_a_sigkilled_daemon_started_again_resumes_the_task_once(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    env = {"AGENT_MODE": "block-once", "AGENT_ROUTE": PAIR}
    first = await start_daemon(cli, "machine", "start", env=env)
    await first.line(r"following this machine's agents")
    (await cli.run("agents", "start", room, "--role=builder", *_agents_start(workdir))).ok()
    await cli.send(room, "Build it.")
    await until(lambda: _has(workdir, "runs.log"), "the agent started")
    assert await first.stop(9) == -9
    second = await start_daemon(cli, "machine", "start", env=env)
    try:
        await second.line(rf"{room}/builder: WORKING task \S+ \(resumed after a restart\)")

        async def handed_off() -> bool:
            return handoffs(await feed(live_server, cli.token(), room)) == [("builder", "reviewer")]

        await until(handed_off, "the resumed task was handed off once")
        runs = _log(workdir, "runs.log")
        assert len(runs) == 2 and runs[0].split()[0] == runs[1].split()[0]
        first_token = _log(workdir, "tokens.log")[0].split()[1]
        async with gql_http(live_server, first_token) as session:
            code, _ = await expect_error(session.execute("query { me { id } }"))
        assert code == "UNAUTHENTICATED"  # the new claim revoked the killed daemon's token
    finally:
        assert await second.stop() == 0, second.out


async def test_agents_run_takes_the_room_over_from_machine_start_on_the_same_computer(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    """`agents run` serves from a machine of its own: its startAgents moves the slot there, so
    the `machine start` daemon sees it leave (no claim race) and the task is handed off once."""
    room = await cli.create_room()
    env = {"AGENT_MODE": "block-once", "AGENT_ROUTE": PAIR}
    daemon = await start_daemon(cli, "machine", "start", env=env)
    try:
        await daemon.line(r"following this machine's agents")
        # No --workdir: `agents start` takes the directory it runs in (SPEC §10).
        here = shlex.join(["cd", str(workdir)])
        start = shlex.join(["chatroom", "agents", "start", room, "--role=builder"])
        flags = shlex.join(_agents_start(workdir)[:2])
        (await cli.bash(f"{here} && {start} {flags}")).ok()
        assert (await _slot(cli, room, "builder")())["workdir"] == str(workdir)
        await cli.send(room, "Build it.")
        await daemon.line(rf"{room}/builder: WORKING task")
        await until(lambda: _has(workdir, "runs.log"), "the agent started")

        runner = await start_daemon(
            cli, "agents", "run", room, "--role=builder", *_agents_start(workdir), env=env
        )
        try:
            await daemon.line(rf"{room}/builder: stopping: no longer this machine's to run")
            await runner.line(r"builder: WORKING task \S+ \(resumed after a restart\)")

            async def handed_off() -> bool:
                pairs = handoffs(await feed(live_server, cli.token(), room))
                return pairs == [("builder", "reviewer")]

            await until(handed_off, "the task was handed off once")
            slot = await until(_in_state(cli, room, "builder", "WAITING"), "builder WAITING")
            assert slot["machine_name"].endswith(" (agents run)"), slot
            runs = _log(workdir, "runs.log")
            assert len(runs) == 2 and runs[0].split()[0] == runs[1].split()[0], runs
        finally:
            assert await runner.stop() == 0, runner.out
        assert "SUPERSEDED" not in daemon.out + runner.out
        # Two machines for this computer: `machine start`'s and `agents run`'s.
        status = await cli.json("machine", "status")
        assert not status["machine"]["name"].endswith(" (agents run)")
        assert status["machine"]["agents"] == []
    finally:
        assert await daemon.stop() == 0, daemon.out


def test_agents_run_fallback_names_only_the_roles_it_served() -> None:
    """When `agents run` cannot mark its slots stopped, the command it prints stops its roles
    only (the room's other slots may run on other machines), and the real CLI parses it."""
    from chatroom.cli.main import app
    from chatroom.runner.command import stop_command

    printed = stop_command("room-1", ["builder", "reviewer"])
    words = shlex.split(printed)
    assert words[:4] == ["chatroom", "agents", "stop", "room-1"], printed
    ctx = _parsed(app, words[1:])  # the real parser: an unknown flag would raise
    assert ctx.params["room_id"] == "room-1"
    assert ctx.params["role"] == ["builder", "reviewer"]
    # `agents run` keeps --workdir required (SPEC §10); `agents start` defaults it.
    with pytest.raises(Exception, match="workdir"):
        _parsed(app, ["agents", "run", "room-1", "--harness=command"])
    assert _parsed(app, ["agents", "start", "room-1", "--harness=claude"]).params["workdir"] is None


def _parsed(app: Any, words: list[str]) -> Any:
    """The click context the CLI builds for `chatroom <words>` (resolved as the CLI does)."""
    import typer.main

    command: Any = typer.main.get_command(app)
    while hasattr(command, "get_command"):
        command = command.get_command(command.context_class(command), words[0])
        assert command is not None, words[0]
        words = words[1:]
    return command.make_context(command.name, words)


async def _has(workdir: Path, name: str) -> bool:
    return bool(_log(workdir, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
