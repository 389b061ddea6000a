"""A slot's state, as its daemon tells the server (`reportAgentState`).

One sender per slot, one report in flight at a time: a change made while one is in flight waits
for it and then goes with the newest values (state changes are never held back otherwise;
activity lines already come at most once a second, chatroom/runner/activity.py). When the server
cannot be reached the newest values wait and go when it answers again. Every report names the
generation of the claim it is about, so a late one never touches a later claim. A CONFLICT means
the claim is over (another daemon serves the slot now, or it was restarted or changed): the
sender says so once (`on_conflict`) and sends nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from chatroom.cli.client import LONG_RETRY_SECONDS, Api
from chatroom.cli.errors import ServerRefused, Unreachable
from chatroom.cli.live import TRANSIENT

LAST_ERROR_WIDTH = 2000
RETRY_PAUSE_SECONDS = 1.0
CLOSE_SECONDS = 5.0  # how long a stopping daemon waits for its last report


class StateReport:
    def __init__(
        self,
        client: Api,
        slot_id: str,
        daemon_id: str,
        generation: int,
        *,
        on_conflict: Callable[[], None],
        on_refused: Callable[[str], None],
    ) -> None:
        self.client = client
        self.slot_id = slot_id
        self.daemon_id = daemon_id
        self.generation = generation  # the claim's
        self.on_conflict = on_conflict
        self.on_refused = on_refused
        self.conflict = False
        self._pending: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing pending, nothing in flight
        self._idle.set()
        self._sender = asyncio.create_task(self._send_all())

    def push(
        self,
        state: str,
        *,
        activity: str | None = None,
        last_error: str | None = None,
        task_id: str | None = None,
    ) -> None:
        """The slot's newest state; sent at once unless a report is in flight."""
        if self.conflict:
            return
        self._pending = {
            "slotId": self.slot_id,
            "daemonId": self.daemon_id,
            "generation": self.generation,
            "state": state,
            "activity": activity,
            "lastError": last_error[:LAST_ERROR_WIDTH] if last_error else None,
            "taskId": task_id,
        }
        self._idle.clear()
        self._wake.set()

    async def close(self, seconds: float = CLOSE_SECONDS) -> None:
        """Send what is pending (waiting at most `seconds`), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)
        self._sender.cancel()
        await asyncio.gather(self._sender, return_exceptions=True)

    def discard(self) -> None:
        """Forget what is pending (the slot is being replaced)."""
        self._pending = None

    async def _send_all(self) -> None:
        while not self.conflict:
            await self._wake.wait()
            self._wake.clear()
            report, self._pending = self._pending, None
            if report is not None:
                await self._send(report)
            if self._pending is None or self.conflict:
                self._idle.set()
            else:
                self._wake.set()

    async def _send(self, report: dict[str, Any]) -> None:
        try:
            await self.client.acall(
                "ReportAgentState", {"input": report}, budget=LONG_RETRY_SECONDS
            )
        except ServerRefused as exc:
            if exc.code == "CONFLICT":
                self.conflict = True
                self._idle.set()
                self.on_conflict()
            elif exc.code in TRANSIENT:
                await self._later(report)
            else:
                self.on_refused(exc.message)
        except Unreachable:
            await self._later(report)

    async def _later(self, report: dict[str, Any]) -> None:
        """Not delivered: send it again after a pause, unless something newer is waiting."""
        if self._pending is None:
            self._pending = report
        await asyncio.sleep(RETRY_PAUSE_SECONDS)
