"""Activity lines, at most one a second per slot: the newest line wins, none is printed twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

INTERVAL_SECONDS = 1.0


class ActivityReporter:
    """Takes every activity line a harness produces; hands at most one a second to `emit`.
    A line that arrives too soon is held and sent when the second is over (a newer one replaces
    it), so the last thing an agent did is always shown."""

    def __init__(self, emit: Callable[[str], None], interval: float = INTERVAL_SECONDS) -> None:
        self.emit = emit
        self.interval = interval
        self.last_at = float("-inf")
        self.last: str | None = None
        self._held: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def report(self, line: str) -> None:
        wait = self.last_at + self.interval - time.monotonic()
        if wait <= 0 and self._timer is None:
            self._send(line)
            return
        self._held = line
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(max(wait, 0.0), self._flush)

    def close(self) -> None:
        """Send what is held (the harness ended) and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held is not None:
            self._send(self._held)

    def _flush(self) -> None:
        self._timer = None
        if self._held is not None:
            self._send(self._held)

    def _send(self, line: str) -> None:
        self._held = None
        if line == self.last:
            return
        self.last = line
        self.last_at = time.monotonic()
        self.emit(line)
