"""The machine daemon (SPEC §10): the one process that runs this computer's agents.

It registers the machine (its id kept per server in the config dir, chatroom/runner/machine_id.py)
with the harnesses found on PATH, heartbeats, and follows `machineAgents`: the server's list of
the machine's agent slots, sent whole after every change. Each slot has one actor here that makes
what runs match what is desired:

- desired RUNNING at a generation this daemon does not run: claim the slot (`claimAgentSlot`:
  newest claim wins, the server mints the harness's token) and run a Slot (chatroom/runner/slot.py)
  with the slot's harness, working directory and options; a Slot that runs an older generation
  (a restart, a changed config, an open circuit) is stopped first.
- desired STOPPED, or the slot gone from the list: stop the Slot's harness gracefully (SIGTERM,
  then SIGKILL) and report STOPPED (the server revokes the token).
- claimed by another daemon after this one's claim (or a report refused with CONFLICT): stop the
  harness and do not claim again until the generation changes (no ping-pong).

Every Slot state change goes to the server at once (chatroom/runner/state_report.py) and is
printed as `[runner] <role>: <STATE> ...` (`<room>/<role>` when the daemon serves every room).
SIGTERM / Ctrl-C stops every harness gracefully and reports STOPPED; the slots stay desired
RUNNING, so the next daemon on this machine picks them up (their tasks come back `resumed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chatroom.cli.client import SHORT_RETRY_SECONDS, Api, Backoff
from chatroom.cli.errors import CliError, LocalInputError, ServerRefused, Unreachable
from chatroom.cli.live import TRANSIENT, ConnectionLost, resilient
from chatroom.cli.output import q
from chatroom.runner.harnesses import make
from chatroom.runner.harnesses.detect import detect
from chatroom.runner.machine_id import default_name, remember_machine, this_machine
from chatroom.runner.sessions import SessionStore
from chatroom.runner.slot import RECONNECT_SECONDS, Slot, SlotConfig, SlotState
from chatroom.runner.slot_view import harness_list
from chatroom.runner.state_report import StateReport

HEARTBEAT_SECONDS = 10.0
RUNNING = "RUNNING"


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass
class Served:
    """One agent slot of this machine: the server's newest view of it, and what runs for it."""

    id: str
    room_id: str
    role: str
    latest: dict[str, Any] | None = None  # None: no longer this machine's (or not visible)
    generation: int | None = None  # the generation this daemon last claimed (or gave up on)
    claimed_at: datetime | None = None  # the slot's updatedAt as this daemon's claim left it
    taken_over: bool = False
    slot: Slot | None = None
    task: asyncio.Task[None] | None = None
    report: StateReport | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    actor: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class Daemon:
    def __init__(
        self, client: Api, name: str | None = None, *, one_room: bool = False, run: bool = False
    ) -> None:
        self.client = client
        # `agents run`: register its own machine (machine_id.AGENTS_RUN), so a `machine start`
        # daemon on this computer sees the room's slots leave rather than fight for them.
        self.run_machine = run
        self.server = client.target.base_url
        self.name = name
        self.daemon_id = str(uuid.uuid4())
        self.machine_id: str | None = None
        self.only: set[str] | None = None  # these slots only (`agents run`); None: every slot
        self.one_room = one_room  # lines name the role alone
        self.sessions = SessionStore()
        self.served: dict[str, Served] = {}
        self.closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping: asyncio.Future[None] | None = None
        # Runs last when the daemon stops (`agents run` marks its slots stopped on the server).
        self.on_stop: Callable[[], Awaitable[None]] | None = None

    # --- life -----------------------------------------------------------------------------

    async def register(self) -> dict[str, Any]:
        """Register (or update) this computer's machine; remember its id for this server."""
        known = this_machine(self.server, run=self.run_machine)
        name = self.name or (known or {}).get("name") or default_name(run=self.run_machine)
        fields = {"name": name, "harnesses": await detect(), "daemonId": self.daemon_id}
        machine: dict[str, Any] | None = None
        if known:
            try:
                data = await self.client.acall(
                    "RegisterMachine", {"input": {**fields, "machineId": known["machine_id"]}}
                )
                machine = data["registerMachine"]
            except ServerRefused as exc:
                if exc.code != "NOT_FOUND":  # not on this server (any more): register anew
                    raise
        if machine is None:
            machine = (await self.client.acall("RegisterMachine", {"input": fields}))[
                "registerMachine"
            ]
        self.machine_id, self.name = machine["id"], machine["name"]
        remember_machine(self.server, machine["id"], machine["name"], run=self.run_machine)
        self.say(
            f"machine {q(machine['name'])} ({machine['id']}) registered with {self.server}; "
            f"harnesses: {harness_list(machine)}"
        )
        return machine

    async def run(self) -> None:
        """Follow the machine's slots until stopped (or the server refuses the daemon)."""
        if self.machine_id is None:
            await self.register()
        follow = asyncio.create_task(self._follow())
        self._tasks = [follow, asyncio.create_task(self._heartbeat())]
        self.say("following this machine's agents (Ctrl-C stops)")
        try:
            await follow
        except asyncio.CancelledError:
            if not self.closing:
                raise
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every harness gracefully and report its slot STOPPED (tasks stay with roles).
        Every caller waits for the one shutdown to finish."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._stopping)

    async def _shutdown(self) -> None:
        self.closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        served = list(self.served.values())
        if any(s.running for s in served):
            self.say("stopping: the agents get SIGTERM; their tasks stay with their roles")

        async def end(one: Served) -> None:
            async with one.lock:
                await self._end(one, final=True)

        await asyncio.gather(*(end(one) for one in served))
        for one in served:
            if one.actor is not None:
                one.actor.cancel()
        await asyncio.gather(*(o.actor for o in served if o.actor), return_exceptions=True)
        if self.on_stop is not None:
            await self.on_stop()
        self.say("stopped")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.client.acall(
                    "MachineHeartbeat",
                    {"input": {"machineId": self.machine_id, "daemonId": self.daemon_id}},
                    budget=HEARTBEAT_SECONDS,
                )
            except Unreachable:
                pass  # the subscription says so; the next beat tries again
            except ServerRefused as exc:
                if exc.code not in TRANSIENT:
                    self.say(f"the heartbeat was refused: {exc.message}")

    async def _follow(self) -> None:
        """The machine's slots, as the server sends them; reconnects for up to an hour."""
        backoff = Backoff(RECONNECT_SECONDS)
        while True:
            results = resilient(
                self.client, "MachineAgents", lambda: {"machineId": self.machine_id}
            )
            try:
                async with contextlib.aclosing(results):
                    async for result in results:
                        backoff.reset(RECONNECT_SECONDS)
                        self._desired(result["machineAgents"]["agents"])
            except ConnectionLost:
                pass
            delay = backoff.next_delay()
            if delay is None:
                raise self.client.unreachable("it stayed unreachable", RECONNECT_SECONDS)
            self.say("server unreachable; reconnecting")
            await asyncio.sleep(delay)

    def _desired(self, agents: list[dict[str, Any]]) -> None:
        """Hand each slot's newest view to its actor (created on first sight)."""
        if self.closing:
            return
        seen: set[str] = set()
        for view in agents:
            if self.only is not None and view["id"] not in self.only:
                continue
            seen.add(view["id"])
            one = self.served.get(view["id"])
            if one is None:
                one = self.served[view["id"]] = Served(view["id"], view["chatroomId"], view["role"])
                one.actor = asyncio.create_task(self._steer(one))
            one.latest = view
            one.wake.set()
        for one in self.served.values():
            if one.id not in seen and one.latest is not None:
                one.latest = None
                one.wake.set()

    # --- one slot -------------------------------------------------------------------------

    async def _steer(self, one: Served) -> None:
        """The slot's actor: applies the newest view, one change at a time."""
        while not self.closing:
            await one.wake.wait()
            one.wake.clear()
            async with one.lock:
                if self.closing:
                    return
                try:
                    await self._apply(one)
                except Exception as exc:  # the slot's actor stays: the next view tries again
                    message = exc.message if isinstance(exc, CliError) else repr(exc)
                    self._line(one, f"could not follow the server's change: {message}")

    async def _apply(self, one: Served) -> None:
        want = one.latest
        if want is None or want["desiredState"] != RUNNING:
            if one.running:
                why = "stopped on the server" if want else "no longer this machine's to run"
                self._line(one, f"stopping: {why}")
            await self._end(one, final=True)
            one.generation = None
            return
        if want["generation"] != one.generation:
            if one.running:
                self._line(one, f"restarting for generation {want['generation']}")
            await self._end(one, final=False)
            await self._claim(one, want)
            return
        if not one.taken_over and self._claimed_elsewhere(one, want):
            one.taken_over = True
            if one.slot is not None:
                one.slot.state = SlotState.SUPERSEDED
            self._line(
                one,
                f"SUPERSEDED another daemon took {one.room_id}/{one.role} over; stopping it",
            )
            await self._end(one, final=False)

    def _claimed_elsewhere(self, one: Served, want: dict[str, Any]) -> bool:
        """Another daemon claimed the slot after this one did (an older view, read before this
        daemon's claim, does not count)."""
        if one.report is not None and one.report.conflict:
            return True
        other = want.get("daemonId") not in (None, self.daemon_id)
        return other and one.claimed_at is not None and _moment(want["updatedAt"]) > one.claimed_at

    async def _claim(self, one: Served, want: dict[str, Any]) -> None:
        variables = {
            "input": {
                "slotId": one.id,
                "daemonId": self.daemon_id,
                "generation": want["generation"],
            }
        }
        try:
            # A short budget: a daemon told to stop must not wait long on a claim, and the view
            # after a reconnect claims again.
            data = await self.client.acall("ClaimAgentSlot", variables, budget=SHORT_RETRY_SECONDS)
            claim = data["claimAgentSlot"]
        except ServerRefused as exc:
            if exc.code in ("CONFLICT", *TRANSIENT):
                return  # it changed meanwhile: the next view says how
            one.generation = want["generation"]  # not again until it changes
            self._line(one, f"STOPPED the server refused the claim: {exc.message}")
            return
        except Unreachable:
            return  # the view after the reconnect tries again
        view, token = claim["slot"], claim["token"]
        one.generation = view["generation"]
        one.claimed_at = _moment(view["updatedAt"])
        one.taken_over = False
        one.report = StateReport(
            self.client,
            one.id,
            self.daemon_id,
            view["generation"],
            on_conflict=one.wake.set,
            on_refused=lambda message: self._line(one, f"the server refused a report: {message}"),
        )
        try:
            config = self._config(view)
        except LocalInputError as exc:
            self._line(one, f"STOPPED {exc.message}")
            one.report.push(SlotState.STOPPED.value, last_error=exc.message)
            await self._close_report(one)
            return
        one.slot = Slot(config, self.client, one.role, self.sessions, self._reporter(one), token)
        self._line(
            one,
            f"serving with {config.harness.name} in {config.workdir} "
            f"(generation {view['generation']})",
        )
        one.task = asyncio.create_task(self._serve(one, one.slot))

    def _config(self, view: dict[str, Any]) -> SlotConfig:
        workdir = Path(view["workdir"])
        if not workdir.is_dir():
            raise LocalInputError(
                f"the working directory {view['workdir']} does not exist on this machine"
            )
        timeout = view.get("taskTimeoutSeconds")
        return SlotConfig(
            room_id=view["chatroomId"],
            harness=make(view["harness"], command=view.get("command")),
            workdir=workdir,
            model=view.get("model"),
            task_timeout=float(timeout) if timeout else None,
            fresh_session=bool(view.get("freshSession")),
        )

    async def _serve(self, one: Served, slot: Slot) -> None:
        """A slot that fails for a reason nobody foresaw says so and ends; the others go on.
        Any Exception (not only the foreseen kinds): a slot that died unreported would look alive
        to the person and a restart would not know to retry; cancellation is not caught."""
        try:
            await slot.run()
        except Exception as exc:
            slot.last_error = f"{type(exc).__name__}: {exc}"
            slot.state = SlotState.STOPPED
            self._slot_line(one, slot, f"STOPPED after an unexpected error ({slot.last_error})")

    async def _end(self, one: Served, *, final: bool) -> None:
        """Stop what runs for the slot: its harness gets SIGTERM (SIGKILL after the grace).
        `final`: tell the server STOPPED (it revokes the slot's token)."""
        slot, task = one.slot, one.task
        one.slot = one.task = None
        if slot is not None:
            await slot.stop_harness()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if one.report is None:
            return
        if final and slot is not None and not one.taken_over:
            slot.state = SlotState.STOPPED
            self._slot_line(one, slot, SlotState.STOPPED.value)
        elif not final:
            one.report.discard()
        await self._close_report(one)

    async def _close_report(self, one: Served) -> None:
        report, one.report = one.report, None
        if report is not None:
            await report.close()

    # --- output ---------------------------------------------------------------------------

    def _reporter(self, one: Served) -> Callable[[Slot, str], None]:
        return lambda slot, text: self._slot_line(one, slot, text)

    def _slot_line(self, one: Served, slot: Slot, text: str) -> None:
        """Print what a slot says; tell the server its state (activity while it works)."""
        self._line(one, text)
        if one.report is not None:
            one.report.push(
                slot.state.value,
                activity=slot.activity if slot.state is SlotState.WORKING else None,
                last_error=slot.last_error,
                task_id=slot.task_id,
            )

    def _line(self, one: Served, text: str) -> None:
        self.say(f"{one.role if self.one_room else f'{one.room_id}/{one.role}'}: {text}")

    def say(self, text: str) -> None:
        sys.stdout.write(f"[runner] {text}\n")
        sys.stdout.flush()
