"""The end-to-end flow every real agent CLI is tested through: `chatroom agents run
--harness=<name>` serves the builder and the reviewer, each the real CLI talking to a scripted
model on loopback (the one stand-in), through the pair flow for two queued requests with nobody
acting after `send`. A role's second task resumes that role's session, `--fresh-session` starts
one per task, a SIGKILLed runner resumes the session of its task, and a session the CLI cannot
resume is replaced by a new one.

One piece of code for every harness: a test file per CLI says how that CLI reaches the model
(`Harness`) and asserts what only that CLI shows."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tests.cli.support import Cli
from tests.runner.support import (
    LIMIT,
    RunnerProc,
    activities,
    feed,
    handoffs,
    start_runner,
    tasks,
    until,
)
from tests.support.scripted_model import ScriptedAgent
from tests.support.server import LiveServer

PAIR = [("builder", "reviewer"), ("reviewer", "user")]
ROUTE = {"builder": "reviewer", "reviewer": "user"}
FIRST = "First: add a greeting."
SECOND = "Second: add a farewell."
HOLD = "HOLD-THIS-ONE"
# A session id no CLI has ever seen, stored for the builder before the runner starts.
GONE = "5f1d7c1e-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Harness:
    """What differs between the CLIs: the name (`--harness=`, and the last word of the
    sessions.json keys), the scripted endpoint its protocol needs, and the environment that
    points the CLI at a started endpoint (homes made under the scratch folder it is given)."""

    name: str
    model: Callable[..., ScriptedAgent]
    env: Callable[[Any, Path], dict[str, str]]


@dataclass
class Run:
    """What a flow leaves for a harness's own assertions."""

    room: str
    out: str
    model: ScriptedAgent


@dataclass
class E2e:
    """One harness's end-to-end flows against the module's live server, as one signed-in user."""

    harness: Harness
    server: LiveServer
    cli: Cli
    workdir: Path
    scratch: Path

    # --- the flows ------------------------------------------------------------------------

    async def sessions_resumed_per_role(self) -> Run:
        run = await self.two_requests()
        (builder,) = self.sessions(run.room, "builder")
        (reviewer,) = self.sessions(run.room, "reviewer")
        assert builder != reviewer
        # The second task of each role resumed that role's session...
        assert "builder: WORKING task" in run.out
        assert run.out.count(f"resuming session {builder}") == 1, run.out
        assert run.out.count(f"resuming session {reviewer}") == 1, run.out
        # ...so the model saw the first task's conversation again with the second task's prompt.
        second = run.model.prompts_containing(SECOND)
        assert second and all(FIRST in _conversation(run.model, r) for r in second)
        return run

    async def fresh_session_per_task(self) -> None:
        run = await self.two_requests("--fresh-session")
        assert "resuming session" not in run.out
        second = run.model.prompts_containing(SECOND)
        assert second and not any(FIRST in _conversation(run.model, r) for r in second)

    async def two_requests(self, *extra: str) -> Run:
        """Two requests sent to a new room, both handed back to the user through the pair
        flow; the runner stopped cleanly after."""
        with self._model(route=ROUTE) as model:
            room = await self.cli.create_room()
            runner = await self._start(room, self.harness.env(model, self.scratch), *extra)
            try:
                await self.cli.send(room, FIRST)
                await self.cli.send(room, SECOND)

                async def both_done() -> bool:
                    return (await self._handoffs(room)).count(("reviewer", "user")) == 2

                await _until(runner, both_done, "both requests handed back to the user", 120)
                assert await self._handoffs(room) == PAIR + PAIR
                statuses = {t["status"] for t in await tasks(self.server, self.cli.token(), room)}
                assert statuses == {"COMPLETED"}
                # The activity line is the model's command (not Codex's `/bin/bash -c "..."`).
                await runner.line(r"builder: activity Bash: chatroom task-complete")
                # ...and the daemon reported it to the server, where the web page reads it.
                lines = await activities(self.server, self.cli.token(), room, "builder")
                assert any(line.startswith("Bash: chatroom task-complete") for line in lines)
            finally:
                assert await runner.stop() == 0, runner.out
        return Run(room, runner.out, model)

    async def sigkill_resumes_the_task_session(self) -> None:
        with self._model(route={"builder": "reviewer"}, hold=HOLD) as model:
            env = self.harness.env(model, self.scratch)
            room = await self.cli.create_room()
            first = await self._start(room, env, "--role=builder")
            await self.cli.send(room, f"Build it. {HOLD}")
            assert await asyncio.to_thread(model.holding.wait, 60), first.out
            # The session is stored while the model holds its answer: Claude Code is given its
            # id, Codex names its thread in its first event, before the model answers.
            await first.line(r"builder: WORKING task")

            async def stored() -> list[str]:
                return self.sessions(room, "builder")

            (session,) = await until(stored, "the session stored while the model holds on")
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
            second = await self._start(room, env, "--role=builder")
            try:
                line = await second.line(r"builder: WORKING task \S+ \(resumed after a restart\)")
                assert f"resuming session {session}" in line
                handed_off = partial(self._handoffs, room)
                done = await _until(second, handed_off, "the resumed task was handed off")
                assert done == [("builder", "reviewer")]
                # The resumed conversation still holds the first prompt.
                after = model.prompts_containing("You already started this task")
                assert after and all(HOLD in _conversation(model, r) for r in after)
            finally:
                assert await second.stop() == 0, second.out

    async def unresumable_session_replaced(self) -> None:
        """Resuming GONE fails (`claude --resume` and `codex exec resume` exit 1 before any
        event; Codex says "thread/resume failed: no rollout found for thread id ..."): the slot
        forgets it and starts a new session."""
        with self._model(route=ROUTE) as model:
            room = await self.cli.create_room()
            self._store.parent.mkdir(parents=True)
            self._store.write_text(json.dumps({self._key(room, "builder"): GONE}))
            runner = await self._start(
                room, self.harness.env(model, self.scratch), "--role=builder"
            )
            try:
                await self.cli.send(room, "Build it.")
                await runner.line(rf"builder: WORKING task \S+, resuming session {GONE}")
                await runner.line(r"builder: BACKOFF it exited with code 1")
                await _until(runner, partial(self._handoffs, room), "handed off from a new session")
                assert await self._handoffs(room) == [("builder", "reviewer")]
                (new,) = self.sessions(room, "builder")
                assert new != GONE and GONE not in self._stored().values()
            finally:
                assert await runner.stop() == 0, runner.out

    # --- what the flows read --------------------------------------------------------------

    def sessions(self, room: str, role: str) -> list[str]:
        """The sessions the runner keeps for `role` of `room` under this harness."""
        key = self._key(room, role)
        return [v for k, v in self._stored().items() if k == key]

    @property
    def _store(self) -> Path:
        return self.cli.config_dir / "runner" / "sessions.json"

    def _stored(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self._store.read_text())
        return data

    def _key(self, room: str, role: str) -> str:
        return f"{self.server.base_url} {room} {role} {self.harness.name}"

    async def _handoffs(self, room: str) -> list[tuple[str, str]]:
        return handoffs(await feed(self.server, self.cli.token(), room))

    async def _start(self, room: str, env: dict[str, str], *args: str) -> RunnerProc:
        harness = (f"--harness={self.harness.name}", f"--workdir={self.workdir}")
        return await start_runner(self.cli, room, *harness, *args, env=env)

    @contextmanager
    def _model(self, **script: Any) -> Iterator[ScriptedAgent]:
        model = self.harness.model(**script).start()
        try:
            yield model
        finally:
            model.stop()


def _conversation(model: ScriptedAgent, request: dict[str, Any]) -> str:
    """The turns of one request the model was sent, as text to look for a prompt in."""
    return json.dumps(model.conversation(request))


async def _until(
    runner: RunnerProc, check: Callable[[], Awaitable[Any]], what: str, limit: float = LIMIT
) -> Any:
    """`until`, with the runner's output in the failure (what the agents did meanwhile)."""
    try:
        return await until(check, what, limit)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{runner.out}") from None
