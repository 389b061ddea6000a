"""End to end with the real Codex CLI: `chatroom agents run --harness=codex` serves the builder
and the reviewer, each a `codex exec --json` whose model provider is the scripted Responses
endpoint on loopback (the one stand-in, configured in a scratch CODEX_HOME), through the flows of
tests/runner/e2e.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import Cli
from tests.runner.e2e import SECOND, E2e, Harness
from tests.support.scripted_openai import ScriptedResponses, codex_env
from tests.support.server import LiveServer


def _env(model: ScriptedResponses, scratch: Path) -> dict[str, str]:
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    # HOME too: Codex also looks under ~ (skills, AGENTS.md); nothing of the real one is read.
    return {"HOME": str(home), **codex_env(model, scratch / "codex-home")}


@pytest.fixture
def codex(live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path) -> E2e:
    return E2e(Harness("codex", ScriptedResponses, _env), live_server, cli, workdir, tmp_path)


async def test_codex_agents_complete_two_requests_and_resume_their_sessions(codex: E2e) -> None:
    run = await codex.sessions_resumed_per_role()
    # The builder's second task went on in its one Codex thread (`codex exec resume <id>`):
    # Codex names its thread in each request's metadata.
    second = run.model.prompts_containing(SECOND)
    (builder,) = codex.sessions(run.room, "builder")
    assert {r["client_metadata"]["thread_id"] for r in second} == {builder}


async def test_fresh_session_starts_a_new_codex_thread_per_task(codex: E2e) -> None:
    await codex.fresh_session_per_task()


async def test_a_sigkilled_runner_resumes_the_codex_thread_of_the_task(codex: E2e) -> None:
    await codex.sigkill_resumes_the_task_session()


async def test_a_thread_codex_cannot_resume_is_replaced_by_a_new_one(codex: E2e) -> None:
    await codex.unresumable_session_replaced()
