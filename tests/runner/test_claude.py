"""End to end with the real Claude Code CLI: `chatroom agents run --harness=claude` serves the
builder and the reviewer, each a `claude -p` talking to the scripted Messages endpoint on
loopback (the one stand-in), through the flows of tests/runner/e2e.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.support import Cli
from tests.runner.e2e import E2e, Harness
from tests.support.node_tools import NODE_BIN, node_tool
from tests.support.scripted_model import ScriptedModel
from tests.support.server import LiveServer


def _env(model: ScriptedModel, scratch: Path) -> dict[str, str]:
    node_tool("claude")  # a clear failure when scripts/npm-tools has not run
    home = scratch / "h"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": model.base_url,
        "ANTHROPIC_API_KEY": "scripted",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "PATH": os.pathsep.join([str(NODE_BIN), os.environ.get("PATH", "")]),
    }


@pytest.fixture
def claude(live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path) -> E2e:
    return E2e(Harness("claude", ScriptedModel, _env), live_server, cli, workdir, tmp_path)


async def test_claude_agents_complete_two_requests_and_resume_their_sessions(claude: E2e) -> None:
    await claude.sessions_resumed_per_role()


async def test_fresh_session_starts_a_new_claude_session_per_task(claude: E2e) -> None:
    await claude.fresh_session_per_task()


async def test_a_sigkilled_runner_resumes_the_claude_session_of_the_task(claude: E2e) -> None:
    await claude.sigkill_resumes_the_task_session()


async def test_a_session_claude_cannot_resume_is_replaced_by_a_new_one(claude: E2e) -> None:
    await claude.unresumable_session_replaced()
