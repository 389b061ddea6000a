"""Waiting for a role's tasks inside one `chatroom mcp` process.

Two ways, both the CLI's Waiter (subscribe to taskAvailable, claim atomically, reconnect):

- `wait_once`: one Waiter for the length of one wait_for_task call, as `wait-for-message` does.
- `Desk`: for a Claude Code session started with `--room` and `--role`, the role's one waiter
  for the life of the process. A task that arrives while a wait_for_task call is open goes to
  that call; otherwise it is claimed and pushed to the session as a channel notification
  (`notifications/claude/channel`), so an idle session is woken without asking. Each task is
  handed to the agent once: a delivery the server repeats (a reconnect, a restart of the
  server) is recognised by (task id, attempt) and dropped.

Either way a newer waiter for the role, MCP or CLI, takes the role over (SUPERSEDED).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from chatroom.cli.client import LONG_RETRY_SECONDS, Api, Backoff
from chatroom.cli.errors import ServerRefused, Unreachable
from chatroom.cli.live import TRANSIENT, Outcome, Waiter
from chatroom.cli.render import RoleInfo

# After a claim that was under way when a call's time ran out, how long the call may still take
# to return that task (the claim itself has finished; only the subscription's close is left).
CLAIM_GRACE_SECONDS = 10.0
# Between two attempts of the desk to hold the role after its connection was lost for good.
DESK_RETRY_SECONDS = 5.0

Push = Callable[[Outcome, RoleInfo | None], Awaitable[None]]


async def wait_once(waiter: Waiter, seconds: float) -> Outcome | None:
    """Run `waiter` until it has an outcome or `seconds` pass (None). A claim under way when
    the time is up is finished first, so a task that was claimed is returned, never dropped.
    A cancelled call stops the waiter; whatever it claimed is redelivered (`resumed`) to the
    next waiter for the role."""
    work = asyncio.ensure_future(waiter.run())
    try:
        done, _ = await asyncio.wait({work}, timeout=seconds)
        if not done and (claiming := waiter.claiming()) is not None:
            over: asyncio.Future[Any] = asyncio.ensure_future(claiming)
            both: set[asyncio.Future[Any]] = {work, over}
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                await asyncio.wait({work}, timeout=CLAIM_GRACE_SECONDS)
        if work.done():
            return work.result()
        return None
    finally:
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work


def task_key(outcome: Outcome) -> tuple[str, int | None]:
    """What makes a delivery the same task for the agent: the task and the claim it is under
    (a task taken back and claimed again is new work)."""
    task = (outcome.delivery or {}).get("task") or {}
    return str(task.get("id")), task.get("attempt")


@dataclass
class _DeskWaiter(Waiter):
    """The CLI's Waiter, kept subscribed: each task (or interrupt) it claims goes to the desk
    and the subscription stays open for the next one. It ends on SUPERSEDED or a lost
    connection only."""

    desk: Desk | None = field(default=None, repr=False)

    async def _handle(self, delivery: dict[str, Any]) -> Outcome | None:
        outcome = await super()._handle(delivery)
        if outcome is not None and outcome.event in ("task", "interrupt") and self.desk:
            await self.desk.arrived(outcome, self.info)
            return None
        return outcome


class Desk:
    """The role's waiter for the whole process (see the module docstring)."""

    def __init__(self, client: Api, room_id: str, role: str, push: Push) -> None:
        self.client = client
        self.room_id = room_id
        self.role = role
        self.push = push
        self.info: RoleInfo | None = None
        self.current: Outcome | None = None  # the last task handed to the agent
        self.ended: Outcome | None = None  # superseded (or refused for good): not running
        self._given: set[tuple[str, int | None]] = set()
        self._calls: deque[asyncio.Future[Outcome]] = deque()
        self._runner: asyncio.Task[None] | None = None
        self._pushes: set[asyncio.Future[None]] = set()  # pushes made for cancelled calls

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    def start(self) -> None:
        if not self.running:
            self.ended = None
            self._runner = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(BaseException):
                await self._runner

    async def _run(self) -> None:
        backoff = Backoff(LONG_RETRY_SECONDS)
        while True:
            waiter = _DeskWaiter(self.client, self.room_id, self.role, desk=self)
            try:
                outcome: Outcome | None = await waiter.run()
            except (Unreachable, ServerRefused) as exc:
                if isinstance(exc, ServerRefused) and exc.code not in TRANSIENT:
                    self._end(Outcome("refused", detail=f"{exc.code}: {exc.message}"))
                    return
                outcome = None
            if outcome is not None and outcome.event == "superseded":
                self._end(outcome)
                await self.push(outcome, self.info)
                return
            # The connection is gone for now (the waiter's own budget is spent): try again.
            delay = backoff.next_delay()
            if delay is None:
                backoff.reset(LONG_RETRY_SECONDS)
                delay = DESK_RETRY_SECONDS
            await asyncio.sleep(delay)

    def _end(self, outcome: Outcome) -> None:
        self.ended = outcome
        while self._calls:
            call = self._calls.popleft()
            if not call.done():
                call.set_result(outcome)

    async def arrived(self, outcome: Outcome, info: RoleInfo | None) -> None:
        """A task the role now holds, or an interrupt: to the open call, else pushed."""
        self.info = info or self.info
        if outcome.event == "task":
            key = task_key(outcome)
            if key in self._given:
                return  # the server repeated a delivery the agent already has
            self._given.add(key)
            self.current = outcome
        else:
            self.current = None  # an interrupt takes the task back
        while self._calls:
            call = self._calls.popleft()
            if not call.done():
                call.set_result(outcome)
                return
        await self.push(outcome, self.info)

    def finished(self, task_id: str | None) -> None:
        """The agent handed `task_id` off: it is no longer the task to give back."""
        if self.current is not None and task_key(self.current)[0] == task_id:
            self.current = None

    async def next(
        self,
        seconds: float,
        held: Callable[[str], Awaitable[bool]],
        on_waiting: Callable[[], Awaitable[None]],
    ) -> Outcome | None:
        """For a wait_for_task call: the task the agent holds and has not handed off (it may
        have missed the push), else the next one to arrive within `seconds` (None)."""
        if self.current is not None:
            task_id = task_key(self.current)[0]
            if await held(task_id):
                delivery = dict(self.current.delivery or {}, resumed=True)
                return Outcome("task", delivery)
            self.current = None
        call: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._calls.append(call)
        try:
            await on_waiting()
            await asyncio.wait({call}, timeout=seconds)
        except asyncio.CancelledError:
            if call.done() and not call.cancelled():
                # Cancelled just as a task reached this call: the agent never saw it. It is
                # the current task, so the next call returns it; it is pushed as well.
                pushing = asyncio.ensure_future(self.push(call.result(), self.info))
                self._pushes.add(pushing)
                pushing.add_done_callback(self._pushes.discard)
            raise
        finally:
            if call in self._calls:
                self._calls.remove(call)
            if not call.done():
                call.cancel()
        return call.result() if not call.cancelled() else None
