"""End to end with the real Codex CLI: `chatroom agents run --harness=codex` serves the builder
and the reviewer, each a `codex exec --json` whose model provider is the scripted Responses
endpoint on loopback (the one stand-in, configured in a scratch CODEX_HOME), through the pair flow
for two queued requests with nobody acting after `send`."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import Cli
from tests.runner.support import feed, handoffs, start_runner, tasks, until
from tests.support.scripted_openai import ScriptedResponses, codex_env
from tests.support.server import LiveServer

PAIR = [("builder", "reviewer"), ("reviewer", "user")]


@pytest.fixture
def model() -> Iterator[ScriptedResponses]:
    scripted = ScriptedResponses(route={"builder": "reviewer", "reviewer": "user"}).start()
    yield scripted
    scripted.stop()


def _env(model: ScriptedResponses, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    # HOME too: Codex also looks under ~ (skills, AGENTS.md); nothing of the real one is read.
    return {"HOME": str(home), **codex_env(model, tmp_path / "codex-home")}


def _sessions(cli: Cli, room: str, role: str) -> list[str]:
    data: dict[str, str] = json.loads((cli.config_dir / "runner" / "sessions.json").read_text())
    return [v for k, v in data.items() if k.endswith(f" {room} {role} codex")]


async def test_codex_agents_complete_two_requests_and_resume_their_sessions(
    live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path, model: ScriptedResponses
) -> None:
    room = await cli.create_room()
    runner = await start_runner(
        cli, room, "--harness=codex", f"--workdir={workdir}", env=_env(model, tmp_path)
    )
    try:
        await cli.send(room, "First: add a greeting.")
        await cli.send(room, "Second: add a farewell.")

        async def both_done() -> bool:
            pairs = handoffs(await feed(live_server, cli.token(), room))
            return pairs.count(("reviewer", "user")) == 2

        try:
            await until(both_done, "both requests handed back to the user", limit=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{runner.out}") from None
        assert handoffs(await feed(live_server, cli.token(), room)) == PAIR + PAIR
        assert {t["status"] for t in await tasks(live_server, cli.token(), room)} == {"COMPLETED"}
        # The activity line is the model's command, not Codex's `/bin/bash -c "..."` wrapper.
        await runner.line(r"builder: activity Bash: chatroom task-complete")
    finally:
        assert await runner.stop() == 0, runner.out
    out = runner.out
    (builder,) = _sessions(cli, room, "builder")
    (reviewer,) = _sessions(cli, room, "reviewer")
    assert builder != reviewer
    # The second task of each role resumed that role's thread (`codex exec resume <id>`)...
    assert out.count(f"resuming session {builder}") == 1, out
    assert out.count(f"resuming session {reviewer}") == 1, out
    # ...so the model saw the first task's conversation again with the second task's prompt,
    # in the builder's one Codex thread (Codex names its thread in each request's metadata).
    second = model.prompts_containing("Second: add a farewell.")
    assert second and all("First: add a greeting." in json.dumps(r["input"]) for r in second)
    assert {r["client_metadata"]["thread_id"] for r in second} == {builder}


async def test_fresh_session_starts_a_new_codex_thread_per_task(
    live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path, model: ScriptedResponses
) -> None:
    room = await cli.create_room()
    args = ("--harness=codex", f"--workdir={workdir}", "--fresh-session")
    runner = await start_runner(cli, room, *args, env=_env(model, tmp_path))
    try:
        await cli.send(room, "First: add a greeting.")
        await cli.send(room, "Second: add a farewell.")

        async def both_done() -> bool:
            pairs = handoffs(await feed(live_server, cli.token(), room))
            return pairs.count(("reviewer", "user")) == 2

        try:
            await until(both_done, "both requests handed back to the user", limit=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{runner.out}") from None
    finally:
        assert await runner.stop() == 0, runner.out
    assert "resuming session" not in runner.out
    second = model.prompts_containing("Second: add a farewell.")
    assert second and not any("First: add a greeting." in json.dumps(r["input"]) for r in second)


async def test_a_sigkilled_runner_resumes_the_codex_thread_of_the_task(
    live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path
) -> None:
    model = ScriptedResponses(route={"builder": "reviewer"}, hold="HOLD-THIS-ONE").start()
    try:
        env = _env(model, tmp_path)
        room = await cli.create_room()
        args = ("--harness=codex", f"--workdir={workdir}", "--role=builder")
        first = await start_runner(cli, room, *args, env=env)
        await cli.send(room, "Build it. HOLD-THIS-ONE")
        assert await asyncio.to_thread(model.holding.wait, 60), first.out
        # Codex names its thread in its first event, before the model answers.
        await first.line(r"builder: WORKING task")

        async def stored() -> list[str]:
            return _sessions(cli, room, "builder")

        session = await until(stored, "the thread stored while the model holds its answer")
        assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        second = await start_runner(cli, room, *args, env=env)
        try:
            line = await second.line(r"builder: WORKING task \S+ \(resumed after a restart\)")
            assert f"resuming session {session[0]}" in line

            async def handed_off() -> list[tuple[str, str]]:
                return handoffs(await feed(live_server, cli.token(), room))

            try:
                assert await until(handed_off, "the resumed task was handed off") == [
                    ("builder", "reviewer")
                ]
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{second.out}") from None
            # The resumed conversation still holds the first prompt.
            after = model.prompts_containing("You already started this task")
            assert after and all("HOLD-THIS-ONE" in json.dumps(r["input"]) for r in after)
        finally:
            assert await second.stop() == 0, second.out
    finally:
        model.stop()


async def test_a_thread_codex_cannot_resume_is_replaced_by_a_new_one(
    live_server: LiveServer, cli: Cli, workdir: Path, tmp_path: Path, model: ScriptedResponses
) -> None:
    # `codex exec resume <unknown id>` exits 1 before any event ("thread/resume failed: no
    # rollout found for thread id ..."): the slot forgets the session and starts a new one.
    room = await cli.create_room()
    gone = "5f1d7c1e-0000-4000-8000-000000000000"
    store = cli.config_dir / "runner" / "sessions.json"
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps({f"{live_server.base_url} {room} builder codex": gone}))
    args = ("--harness=codex", f"--workdir={workdir}", "--role=builder")
    runner = await start_runner(cli, room, *args, env=_env(model, tmp_path))
    try:
        await cli.send(room, "Build it.")
        await runner.line(rf"builder: WORKING task \S+, resuming session {gone}")
        await runner.line(r"builder: BACKOFF it exited with code 1")

        async def handed_off() -> list[tuple[str, str]]:
            return handoffs(await feed(live_server, cli.token(), room))

        try:
            await until(handed_off, "handed off from a new thread")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{runner.out}") from None
        assert await handed_off() == [("builder", "reviewer")]
        (new,) = _sessions(cli, room, "builder")
        assert new != gone
    finally:
        assert await runner.stop() == 0, runner.out
