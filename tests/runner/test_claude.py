"""End to end with the real Claude Code CLI: `chatroom agents run --harness=claude` serves the
builder and the reviewer, each a `claude -p` talking to the scripted model on loopback (the one
stand-in), through the pair flow for two queued requests with nobody acting after `send`."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import Cli
from tests.runner.support import feed, handoffs, start_runner, tasks, until
from tests.support.node_tools import NODE_BIN, node_tool
from tests.support.scripted_model import ScriptedModel
from tests.support.server import LiveServer


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    scripted = ScriptedModel(route={"builder": "reviewer", "reviewer": "user"}).start()
    yield scripted
    scripted.stop()


def _claude_env(model: ScriptedModel, home: Path) -> dict[str, str]:
    node_tool("claude")  # a clear failure when scripts/npm-tools has not run
    home.mkdir(exist_ok=True)
    import os

    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": model.base_url,
        "ANTHROPIC_API_KEY": "scripted",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "PATH": os.pathsep.join([str(NODE_BIN), os.environ.get("PATH", "")]),
    }


async def _pair_flow(
    live_server: LiveServer, cli: Cli, room: str, workdir: Path, env: dict[str, str], *extra: str
) -> str:
    runner = await start_runner(
        cli, room, "--harness=claude", f"--workdir={workdir}", *extra, env=env
    )
    try:
        await cli.send(room, "First: add a greeting.")
        await cli.send(room, "Second: add a farewell.")

        async def both_done() -> bool:
            pairs = handoffs(await feed(live_server, cli.token(), room))
            return pairs.count(("reviewer", "user")) == 2

        try:
            await until(both_done, "both requests handed back to the user", limit=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{runner.out}") from None
        assert handoffs(await feed(live_server, cli.token(), room)) == [
            ("builder", "reviewer"),
            ("reviewer", "user"),
            ("builder", "reviewer"),
            ("reviewer", "user"),
        ]
        assert {t["status"] for t in await tasks(live_server, cli.token(), room)} == {"COMPLETED"}
        await runner.line(r"activity Bash: chatroom task-complete")
    finally:
        assert await runner.stop() == 0, runner.out
    return runner.out


def _sessions(cli: Cli) -> dict[str, str]:
    data: dict[str, str] = json.loads((cli.config_dir / "runner" / "sessions.json").read_text())
    return data


async def test_claude_agents_complete_two_requests_and_resume_their_sessions(
    live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path, model: ScriptedModel
) -> None:
    room = await cli.create_room()
    out = await _pair_flow(live_server, cli, room, workdir, _claude_env(model, tmp_path / "h"))
    sessions = _sessions(cli)
    builder = next(v for k, v in sessions.items() if f" {room} builder claude" in k)
    # The second task of each role resumed that role's session...
    assert "builder: WORKING task" in out
    assert out.count(f"resuming session {builder}") == 1, out
    # ...so the model saw the first task's conversation again with the second task's prompt.
    second = model.prompts_containing("Second: add a farewell.")
    assert second and all("First: add a greeting." in json.dumps(r["messages"]) for r in second)


async def test_fresh_session_starts_a_new_claude_session_per_task(
    live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path, model: ScriptedModel
) -> None:
    room = await cli.create_room()
    env = _claude_env(model, tmp_path / "h")
    out = await _pair_flow(live_server, cli, room, workdir, env, "--fresh-session")
    assert "resuming session" not in out
    second = model.prompts_containing("Second: add a farewell.")
    assert second and not any("First: add a greeting." in json.dumps(r["messages"]) for r in second)


async def test_a_sigkilled_runner_resumes_the_claude_session_of_the_task(
    live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path
) -> None:
    model = ScriptedModel(route={"builder": "reviewer"}, hold="HOLD-THIS-ONE").start()
    try:
        env = _claude_env(model, tmp_path / "h")
        room = await cli.create_room()
        args = ("--harness=claude", f"--workdir={workdir}", "--role=builder")
        first = await start_runner(cli, room, *args, env=env)
        await cli.send(room, "Build it. HOLD-THIS-ONE")
        assert await asyncio.to_thread(model.holding.wait, 60), first.out
        (session,) = (v for k, v in _sessions(cli).items() if f" {room} builder claude" in k)
        assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        second = await start_runner(cli, room, *args, env=env)
        try:
            line = await second.line(r"builder: WORKING task \S+ \(resumed after a restart\)")
            assert f"resuming session {session}" in line

            async def handed_off() -> list[tuple[str, str]]:
                return handoffs(await feed(live_server, cli.token(), room))

            assert await until(handed_off, "the resumed task was handed off") == [
                ("builder", "reviewer")
            ]
            # The resumed conversation still holds the first prompt.
            after = model.prompts_containing("You already started this task")
            assert after and all("HOLD-THIS-ONE" in json.dumps(r["messages"]) for r in after)
        finally:
            assert await second.stop() == 0, second.out
    finally:
        model.stop()


async def test_a_session_claude_cannot_resume_is_replaced_by_a_new_one(
    live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path, model: ScriptedModel
) -> None:
    room = await cli.create_room()
    gone = "5f1d7c1e-0000-4000-8000-000000000000"
    store = cli.config_dir / "runner" / "sessions.json"
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps({f"{live_server.base_url} {room} builder claude": gone}))
    env = _claude_env(model, tmp_path / "h")
    runner = await start_runner(
        cli, room, "--harness=claude", f"--workdir={workdir}", "--role=builder", env=env
    )
    try:
        await cli.send(room, "Build it.")
        await runner.line(rf"builder: WORKING task \S+, resuming session {gone}")
        await runner.line(r"builder: BACKOFF it exited with code")

        async def handed_off() -> list[tuple[str, str]]:
            return handoffs(await feed(live_server, cli.token(), room))

        try:
            await until(handed_off, "handed off from a new session", limit=20)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{runner.out}") from None
        assert await handed_off() == [("builder", "reviewer")]
        assert gone not in _sessions(cli).values()
    finally:
        assert await runner.stop() == 0, runner.out
