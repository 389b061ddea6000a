"""End to end with the real Claude Code CLI: `chatroom agents run --harness=claude` serves the
builder and the reviewer, each a `claude -p` talking to the scripted model on loopback (the one
stand-in), through the pair flow for two queued requests with nobody acting after `send`."""

from __future__ import annotations

import json
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
