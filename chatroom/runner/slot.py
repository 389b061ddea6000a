"""One role's agent slot: the role's waiter, and the owner of every harness run for it.

A slot waits for a task (the CLI's Waiter: subscribe, claim atomically), runs the harness on it,
and when the process exits asks the server whether the task was handed off. Not handed off: the
same session is resumed with a nudge, at most twice; then the slot NEEDS_ATTENTION, the room is
told why, and the task stays with the role until a person decides. A crash (non-zero exit) is
restarted with backoff; five in ten minutes open the slot's circuit, and the slot ends until a
person restarts it (`chatroom agents restart`: the daemon then runs a new slot).

A slot is run by the machine daemon (chatroom/runner/machine.py), which claims it on the server
first: the harness acts with the token of that claim, scoped to the slot's room and role.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from chatroom.cli import output
from chatroom.cli.client import Api, Backoff
from chatroom.cli.errors import ServerRefused, Unreachable
from chatroom.cli.live import TRANSIENT, Waiter, room_events
from chatroom.cli.render import Chain, RoleInfo, team_of
from chatroom.guidance import Team
from chatroom.runner.activity import ActivityReporter
from chatroom.runner.harnesses import Harness, Turn
from chatroom.runner.harnesses.turn import json_event
from chatroom.runner.process import Exit, HarnessProcess
from chatroom.runner.prompt import nudge, task_prompt
from chatroom.runner.sessions import SessionStore, runner_dir

MAX_NUDGES = 2
CIRCUIT_FAILURES = 5
CIRCUIT_WINDOW_SECONDS = 600.0
ENV_BACKOFF = "CHATROOM_RUNNER_BACKOFF_SECONDS"
DEFAULT_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 60.0
RECONNECT_SECONDS = 3600.0  # a slot outlives server restarts: it keeps trying this long


class SlotState(StrEnum):
    STARTING = "STARTING"
    WAITING = "WAITING"
    WORKING = "WORKING"
    BACKOFF = "BACKOFF"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    SUPERSEDED = "SUPERSEDED"
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class SlotConfig:
    """How one slot runs its harness (from the server's agent slot)."""

    room_id: str
    harness: Harness
    workdir: Path
    model: str | None = None
    task_timeout: float | None = None
    fresh_session: bool = False


def left(task: dict[str, Any], role: str) -> bool:
    """The task is no longer in progress with `role`."""
    return task.get("status") != "IN_PROGRESS" or task.get("assignedTo") != role


def taken_back(task: dict[str, Any], role: str) -> bool:
    """Left `role` other than by being completed (a handoff completes it)."""
    return left(task, role) and task.get("status") != "COMPLETED"


def backoff_seconds(failures: int) -> float:
    base = DEFAULT_BACKOFF_SECONDS
    with contextlib.suppress(ValueError):
        base = float(os.environ.get(ENV_BACKOFF, base))
    return float(min(base * 2 ** max(failures - 1, 0), MAX_BACKOFF_SECONDS))


@dataclass
class Slot:
    config: SlotConfig
    client: Api  # the person's own token: waits, claims, checks, posts
    role: str
    sessions: SessionStore
    report: Callable[[Slot, str], None]  # prints a line about this slot, tells the server
    token: str  # the agent token the harness acts with (the slot's room + role only)
    state: SlotState = SlotState.STARTING
    task_id: str | None = None
    activity: str | None = None
    last_error: str | None = None
    failures: deque[float] = field(default_factory=deque)
    process: HarnessProcess | None = None
    stopping: bool = False
    superseded: bool = False
    _reported: bool = False  # the current run's harness reported its session id

    # --- life -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the role until stopped, superseded, or its circuit opens."""
        backoff = Backoff(RECONNECT_SECONDS)
        while not self.stopping:
            try:
                waiter = Waiter(self.client, self.config.room_id, self.role)
                self.task_id = self.activity = None
                self._set(SlotState.WAITING)
                outcome = await waiter.run()
                backoff.reset(RECONNECT_SECONDS)
            except (Unreachable, ServerRefused) as exc:
                if isinstance(exc, ServerRefused) and exc.code not in TRANSIENT:
                    self.last_error = exc.message
                    self._set(SlotState.STOPPED, exc.message)
                    return
                outcome = None
                self.last_error = exc.message
            if outcome is None or outcome.event == "connection_lost":
                delay = backoff.next_delay()
                if delay is None:
                    self._set(SlotState.STOPPED, "the server stayed unreachable")
                    return
                self._set(SlotState.BACKOFF, "server unreachable; reconnecting")
                await asyncio.sleep(delay)
                continue
            if outcome.event == "superseded":
                self._set(
                    SlotState.SUPERSEDED,
                    "another waiter took this role over; this slot stops (do not start two "
                    "runners for one role)",
                )
                return
            if outcome.event == "task" and outcome.delivery and waiter.info:
                self.role = waiter.info.role
                await self._work(waiter.info, outcome.delivery)
                if self.superseded:
                    return
                if self.state is SlotState.CIRCUIT_OPEN:
                    return  # until a person restarts it

    async def stop_harness(self) -> None:
        """Graceful stop: the harness gets SIGTERM, then SIGKILL after a grace period."""
        self.stopping = True
        if self.process is not None:
            await self.process.stop()

    # --- one task -------------------------------------------------------------------------

    async def _work(self, info: RoleInfo, delivery: dict[str, Any]) -> None:
        room_id = self.config.room_id
        harness = self.config.harness
        task_id = delivery["task"]["id"]
        self.task_id = task_id
        key = SessionStore.key(self.client.target.base_url, room_id, self.role, harness.name)
        session = self.sessions.get(key)
        if self.config.fresh_session and not delivery.get("resumed"):
            session = None
        commands = output.commands()
        team, chain = await self._context()
        first = task_prompt(team, self.role, delivery, chain, commands)
        prompt = first
        nudges = 0
        while True:
            how = f"resuming session {session}" if session and harness.resumable else "new session"
            resumed = " (resumed after a restart)" if delivery.get("resumed") else ""
            self._set(SlotState.WORKING, f"task {task_id}{resumed}, {how}")
            ended = await self._run_once(prompt, info, session if harness.resumable else None, key)
            session = self.sessions.get(key) if harness.resumable else None
            if self.stopping or self.superseded:
                return
            if not await self._still_ours(task_id):
                self.task_id = None
                self.activity = None
                return
            why = ended.describe()
            crashed = not ended.timed_out and ended.code != 0
            if crashed:
                self.last_error = why
                if session and not self._reported:
                    # It died before it could even report its session: the session itself is
                    # likely what fails (gone, or unreadable). The next try starts a new one.
                    self.sessions.put(key, None)
                    session = None
                if self._failed():
                    self._set(SlotState.CIRCUIT_OPEN, f"{CIRCUIT_FAILURES} failures in 10 minutes")
                    await self._tell_room(task_id, "its circuit opened", why, ended.tail)
                    return
                delay = backoff_seconds(len(self.failures))
                self._set(SlotState.BACKOFF, f"{why}; restarting in {delay:.1f} s")
                await asyncio.sleep(delay)
            else:
                if nudges >= MAX_NUDGES:
                    self.last_error = f"not handed off after {MAX_NUDGES} nudges ({why})"
                    self._set(SlotState.NEEDS_ATTENTION, self.last_error)
                    await self._tell_room(task_id, "it needs attention", why, ended.tail)
                    await self._until_released(task_id)
                    return
                nudges += 1
                self._set(SlotState.WORKING, f"nudge {nudges} of {MAX_NUDGES}: {why}")
            team, chain = await self._context()
            text = nudge(team, self.role, delivery, chain, commands, why)
            # Without a session to resume, the program starts over: it needs the task again.
            prompt = text if session else f"{text}\n\n{first}"

    async def _context(self) -> tuple[Team, Chain]:
        """The facts the next steps depend on (the team, the chain's classification, review
        and queue), read as the CLI's delivery reads them."""
        room_id = self.config.room_id
        facts = await self.client.acall(
            "DeliveryContext", {"chatroomId": room_id, "role": self.role}
        )
        return team_of(room_id, facts["chatroom"]), Chain.of(facts)

    async def _run_once(self, prompt: str, info: RoleInfo, session: str | None, key: str) -> Exit:
        harness = self.config.harness
        prompts = runner_dir() / "prompts"
        prompts.mkdir(mode=0o700, parents=True, exist_ok=True)
        prompt_file = prompts / f"{self.config.room_id}-{self.role}.md"
        prompt_file.write_text(prompt, encoding="utf-8")
        turn = Turn(
            prompt=prompt,
            prompt_file=prompt_file,
            guidance=info.prompt,
            resume=session,
            new_session=None if session else str(uuid.uuid4()),
            model=self.config.model,
        )
        reporter = ActivityReporter(lambda line: self._activity(line))
        self._reported = False

        def on_line(line: str) -> None:
            event = json_event(line)
            if event is None:
                return
            found = harness.session_of(event)
            if found:
                self._reported = True
                if found != self.sessions.get(key):
                    self.sessions.put(key, found)
            line_text = harness.activity_of(event)
            if line_text:
                reporter.report(line_text)

        self.process = HarnessProcess(
            harness.invocation(turn), env=self._env(), cwd=self.config.workdir, on_line=on_line
        )
        assert self.task_id is not None
        running = asyncio.create_task(self.process.run(self.config.task_timeout))
        watching = asyncio.create_task(self._until_released(self.task_id, taken_back))
        guarding = asyncio.create_task(self._superseded())
        try:
            await asyncio.wait({running, watching}, return_when=asyncio.FIRST_COMPLETED)
            released = watching.done() and not watching.cancelled() and watching.exception() is None
            if released and not running.done():
                # Interrupted, cancelled or released: nobody may work it now (a handoff, which
                # completes the task, lets the agent end its turn in peace).
                self._set(SlotState.WORKING, "the task was taken back: stopping the harness")
                await self.process.stop()
            return await running
        finally:
            for helper in (watching, guarding):
                helper.cancel()
            await asyncio.gather(watching, guarding, return_exceptions=True)
            if not running.done():
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            reporter.close()
            self.process = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CHATROOM_SERVER=self.client.target.base_url,
            CHATROOM_ROOM=self.config.room_id,
            CHATROOM_ROLE=self.role,
            CHATROOM_TASK=self.task_id or "",
            CHATROOM_TOKEN=self.token,
        )
        # The agent runs `chatroom task-complete`: the same installation as this runner.
        here = Path(sys.executable).parent
        if (here / "chatroom").exists():
            env["PATH"] = os.pathsep.join([str(here), env.get("PATH", "")])
        return env

    def _failed(self) -> bool:
        """Record a failure; True when the circuit opens."""
        now = time.monotonic()
        self.failures.append(now)
        while self.failures and now - self.failures[0] > CIRCUIT_WINDOW_SECONDS:
            self.failures.popleft()
        return len(self.failures) >= CIRCUIT_FAILURES

    async def _superseded(self) -> None:
        """Hold the role's waiter while the harness works. When a newer waiter (another
        runner, a `wait-for-message`) takes the role over, stop the harness: the task is the
        newcomer's to resume, and two processes must never work it."""
        outcome = await Waiter(self.client, self.config.room_id, self.role, guard=True).run()
        if outcome.event != "superseded":
            return  # lost the connection for good: the run goes on, the check after it decides
        self.superseded = True
        self._set(SlotState.SUPERSEDED, "another waiter took this role over: stopping the harness")
        if self.process is not None:
            await self.process.stop()

    # --- asking the server ----------------------------------------------------------------

    async def _still_ours(self, task_id: str) -> bool:
        """Is the task still in progress with this role (not handed off)?"""
        data = await self.client.acall(
            "Tasks",
            {"chatroomId": self.config.room_id, "statuses": ["IN_PROGRESS"]},
            budget=RECONNECT_SECONDS,
        )
        return any(t["id"] == task_id and t["assignedTo"] == self.role for t in data["tasks"])

    async def _tell_room(self, task_id: str, what: str, why: str, tail: list[str]) -> None:
        restart = output.commands().agents("restart", self.config.room_id, self.role)
        lines = [
            f"[runner] The {self.role} agent ({self.config.harness.name}) stopped working task "
            f"{task_id}: {what}. Last run: {why}. The task stays with {self.role}: `{restart}` "
            "tries again, or complete or cancel the task.",
        ]
        if tail:
            lines += ["Last output lines:", "```", *tail[-10:], "```"]
        content = "\n".join(lines)
        try:
            await self.client.acall(
                "SendMessage",
                {
                    "input": {
                        "chatroomId": self.config.room_id,
                        "senderRole": self.role,
                        "content": content,
                        "idempotencyKey": f"runner-attention-{uuid.uuid4()}",
                    }
                },
            )
        except (Unreachable, ServerRefused) as exc:
            self.report(self, f"could not post to the room ({exc.message}); the message was:")
            self.report(self, content)

    async def _until_released(
        self, task_id: str, released: Callable[[dict[str, Any], str], bool] | None = None
    ) -> None:
        """Wait until the task is no longer this role's (completed, cancelled, released), or
        until `released(task)` says so for a change to it."""
        room = await self.client.acall("Chatroom", {"id": self.config.room_id})
        cursor = room["chatroom"]["lastEventSeq"]
        # Read after the cursor, so no change is missed. A watcher with its own test (a run in
        # progress) follows the changes only.
        while released is not None or await self._still_ours(task_id):
            events = room_events(self.client, self.config.room_id, cursor)
            try:
                async with contextlib.aclosing(events):
                    async for event in events:
                        cursor = event["seq"]
                        task = event.get("task") or {}
                        if task.get("id") == task_id and (released or left)(task, self.role):
                            return
            except Unreachable:
                await asyncio.sleep(MAX_BACKOFF_SECONDS)  # the server is away: try again

    # --- reporting ------------------------------------------------------------------------

    def _set(self, state: SlotState, detail: str = "") -> None:
        self.state = state
        self.report(self, f"{state.value}{' ' + detail if detail else ''}")

    def _activity(self, line: str) -> None:
        self.activity = line
        self.report(self, f"activity {line}")
