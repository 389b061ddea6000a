"""The commands that stay connected: wait-for-message, the device login, watch.

Each follows one subscription, reconnects quietly with backoff after a drop (a connection that
stayed up for a while gets a fresh retry budget), and ends on its own terms. Signals (SIGINT,
SIGTERM, SIGHUP) and `--timeout` are expected ends, not errors. Imported only by those
commands, so the one-shot commands never load asyncio's machinery at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chatroom.cli.client import (
    LONG_RETRY_SECONDS,
    Api,
    Backoff,
    is_connection_error,
    retry_budget,
)
from chatroom.cli.errors import ServerRefused, Unreachable
from chatroom.cli.output import q
from chatroom.cli.render import RoleInfo

# A connection that stayed up this long was healthy: the next drop gets a fresh retry budget.
HEALTHY_CONNECTION_SECONDS = 5.0
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Refusals that say "try again later": a subscription that ends with one is reopened like a
# dropped connection, instead of ending the wait.
TRANSIENT = ("INTERNAL", "RATE_LIMITED")

T = TypeVar("T")


@dataclass
class Stop:
    """Why a stoppable run ended early: a signal name, or a timeout."""

    signal: str | None = None
    timed_out: bool = False


async def run_stoppable(
    work: Awaitable[T],
    seconds: float | None,
    *,
    busy: Callable[[], Awaitable[None] | None] | None = None,
) -> tuple[T | None, Stop]:
    """Await `work` until it finishes, `seconds` pass, or a signal arrives. When `busy()`
    returns an awaitable (work that must not be cut short is under way), it is awaited first;
    a second signal stops at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopped = Stop()
    signals_seen: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        signals_seen.append(sig.name)
        stopped.signal = stopped.signal or sig.name
        stop.set()
        if len(signals_seen) > 1:
            task.cancel()

    for sig in SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
            loop.add_signal_handler(sig, on_signal, sig)
    task: asyncio.Task[T] = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {task, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        if task not in done and busy is not None:
            pending = busy()
            if pending is not None:
                over = asyncio.ensure_future(pending)
                await asyncio.wait({task, over}, return_when=asyncio.FIRST_COMPLETED)
                over.cancel()
        if task.done() and not task.cancelled():
            return task.result(), stopped
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if stopped.signal is None:
            stopped.timed_out = True
        return None, stopped
    finally:
        stopper.cancel()
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


class _Reconnect:
    """Backoff between reconnections, reset after a healthy connection."""

    def __init__(self) -> None:
        self.budget = retry_budget(LONG_RETRY_SECONDS)
        self.backoff = Backoff(self.budget)
        self.connected_at: float | None = None

    def connected(self) -> None:
        self.connected_at = time.monotonic()

    def next_delay(self) -> float | None:
        if (
            self.connected_at is not None
            and time.monotonic() - self.connected_at >= HEALTHY_CONNECTION_SECONDS
        ):
            self.backoff.reset(self.budget)
        self.connected_at = None
        return self.backoff.next_delay()


class ConnectionLost(Exception):
    """The retry budget ran out while reconnecting a subscription."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"reconnecting failed for {budget:.0f} s")
        self.budget = budget


async def resilient(
    client: Api,
    name: str,
    variables: Callable[[], dict[str, Any]],
    *,
    auth: bool = True,
    on_drop: Callable[[], None] | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """The results of subscription `name`, reopened quietly with backoff after a drop or a
    transient refusal (`variables()` is asked again for each connection, so a caller can
    resume from a cursor). Other refusals propagate as ServerRefused; ConnectionLost when the
    retry budget is spent. The one reconnect loop of every live command."""
    reconnect = _Reconnect()
    while True:
        try:
            async with client.websocket(auth=auth) as session:
                reconnect.connected()
                async for result in client.subscribe(session, name, variables()):
                    yield result
        except ServerRefused as exc:
            if exc.code not in TRANSIENT:
                raise
        except Exception as exc:
            if not is_connection_error(exc):
                raise
        # Dropped (or the server ended the subscription): reconnect quietly.
        delay = reconnect.next_delay()
        if delay is None:
            raise ConnectionLost(reconnect.budget)
        if on_drop is not None:
            on_drop()
        await asyncio.sleep(delay)


# --- wait-for-message -----------------------------------------------------------------------


@dataclass
class Outcome:
    event: str  # task | timeout | signal | superseded | interrupt | connection_lost
    delivery: dict[str, Any] | None = None
    detail: str = ""
    context: dict[str, Any] | None = None  # a task's DeliveryContext, when run_wait read it


@dataclass
class Waiter:
    client: Api
    room_id: str
    role: str
    info: RoleInfo | None = None
    # True while the role's task is being worked (the agent runner): the waiter only holds the
    # role, so that a newer waiter's takeover is heard (SUPERSEDED); it claims nothing.
    guard: bool = False
    _claim: asyncio.Future[None] | None = field(default=None, repr=False)

    async def run(self) -> Outcome:
        """Subscribe to taskAvailable, claim what arrives, reconnect after drops."""
        data = await self.client.acall(
            "RolePrompt", {"chatroomId": self.room_id, "role": self.role}
        )
        self.info = RoleInfo.of(data["rolePrompt"])
        self.role = self.info.role
        variables = {"chatroomId": self.room_id, "role": self.role}
        results = resilient(self.client, "TaskAvailable", lambda: variables)
        try:
            async with contextlib.aclosing(results):
                async for result in results:
                    outcome = await self._handle(result["taskAvailable"])
                    if outcome is not None:
                        return outcome
        except ConnectionLost:
            pass
        return Outcome("connection_lost", detail=f" at {self.client.target.base_url}")

    async def _handle(self, delivery: dict[str, Any]) -> Outcome | None:
        kind = delivery["kind"]
        if kind == "SUPERSEDED":
            return Outcome("superseded")
        if kind == "INTERRUPT":
            return Outcome("interrupt", delivery)
        if kind != "TASK" or not delivery.get("task") or self.guard:
            return None
        if delivery.get("resumed"):
            return Outcome("task", delivery)  # already ours: no claim
        self._claim = asyncio.get_running_loop().create_future()
        try:
            return await self._claim_task(delivery)
        finally:
            if not self._claim.done():
                self._claim.set_result(None)
            self._claim = None

    def claiming(self) -> asyncio.Future[None] | None:
        """While a claim is under way: a future that completes when it is over."""
        return self._claim

    async def _claim_task(self, delivery: dict[str, Any]) -> Outcome | None:
        """Claim a delivered task; None when another claimer won (keep waiting). One
        idempotency key per delivery, reused by every retry of this claim."""
        task = delivery["task"]
        key = f"cli-claim-{uuid.uuid4()}"
        variables = {
            "input": {
                "chatroomId": self.room_id,
                "taskId": task["id"],
                "role": self.role,
                "idempotencyKey": key,
            }
        }
        try:
            result = await self.client.acall(
                "ClaimTask", variables, retry="safe", budget=LONG_RETRY_SECONDS
            )
        except ServerRefused as exc:
            if exc.code == "TASK_NOT_CLAIMABLE":
                return None  # someone else has it now; wait for the next one
            raise
        except Unreachable:
            return Outcome(
                "connection_lost",
                detail=f" at {self.client.target.base_url} while claiming task {q(task['id'])}",
            )
        claim = result["claimTask"]
        if not claim["success"]:
            return None
        return Outcome("task", {**delivery, "task": {**task, **claim["task"]}})


def run_wait(waiter: Waiter, seconds: float | None) -> Outcome:
    """Wait until a task is ours, or an expected end. A claim under way is finished first: a
    task that was claimed is always printed, with its DeliveryContext (what decides the next
    steps, read once the claim is in), read in the same event loop and on the same connection
    as the claim: the delivery's path is as short as it can be."""

    async def main() -> Outcome:
        async with waiter.client.async_session():
            outcome, stopped = await run_stoppable(waiter.run(), seconds, busy=waiter.claiming)
            if outcome is not None and outcome.event == "task":
                variables = {"chatroomId": waiter.room_id, "role": waiter.role}
                outcome.context = await waiter.client.acall("DeliveryContext", variables)
        if outcome is not None:
            return outcome
        if stopped.signal:
            return Outcome("signal", detail=f" ({stopped.signal})")
        return Outcome("timeout")

    return asyncio.run(main())


# --- auth login (device flow) ---------------------------------------------------------------


def await_login(client: Api, request_id: str) -> dict[str, Any]:
    """Follow cliLoginStatus until it leaves PENDING; reconnect after drops."""

    async def follow() -> dict[str, Any]:
        variables = {"requestId": request_id}
        results = resilient(client, "CliLoginStatus", lambda: variables, auth=False)
        try:
            async with contextlib.aclosing(results):
                async for result in results:
                    status = result["cliLoginStatus"]
                    if status["status"] != "PENDING":
                        return dict(status)
        except ConnectionLost:
            pass
        raise client.unreachable("the connection dropped while waiting for approval", 0)

    return asyncio.run(follow())


# --- watch ----------------------------------------------------------------------------------


async def room_events(
    client: Api,
    room_id: str,
    cursor: int,
    *,
    on_drop: Callable[[int], None] | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """The room's events after `cursor`, then live. After a drop it reconnects with backoff and
    resumes from the last event yielded (no gaps, no duplicates); raises Unreachable when the
    retry budget is spent. Used by `watch` and by the agent runner."""
    results = resilient(
        client,
        "RoomEvents",
        lambda: {"chatroomId": room_id, "afterSeq": cursor},
        on_drop=None if on_drop is None else lambda: on_drop(cursor),
    )
    try:
        async with contextlib.aclosing(results):
            async for result in results:
                event = result["roomEvents"]
                if event["seq"] <= cursor:
                    continue  # yielded before the reconnect
                cursor = event["seq"]
                yield event
    except ConnectionLost as lost:
        raise client.unreachable("the connection dropped", lost.budget) from None


def follow_room(
    client: Api,
    room_id: str,
    cursor: int,
    *,
    on_event: Callable[[dict[str, Any]], None],
    on_drop: Callable[[int], None],
    count: int | None,
    seconds: float | None,
) -> int:
    """Print the room's events from `cursor` on; resume from the last one after a drop.
    Returns the last seq handled. Ends after `count` events, `seconds`, or a signal."""
    state = {"cursor": cursor, "seen": 0}

    async def follow() -> None:
        events = room_events(client, room_id, cursor, on_drop=on_drop)
        async with contextlib.aclosing(events):  # closes the websocket on an early return
            async for event in events:
                on_event(event)
                state["cursor"] = event["seq"]
                state["seen"] += 1
                if count is not None and state["seen"] >= count:
                    return

    async def main() -> None:
        await run_stoppable(follow(), seconds)

    asyncio.run(main())
    return state["cursor"]
