"""One harness process: started in the slot's working directory, its output followed line by
line, ended gracefully (SIGTERM to its process group, then SIGKILL) on a stop or a time limit.

The process gets its own process group, so a stop reaches the shell commands the agent started
as well; and it is told to die with the runner (PR_SET_PDEATHSIG, set by
chatroom/runner/parent_guard.py, which execs the harness in place), so a runner killed with
SIGKILL does not leave an agent working a task that the next runner will resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from chatroom.runner.harnesses import Invocation

TAIL_LINES = 15
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Exit:
    code: int | None  # None: it never started
    timed_out: bool
    stopped: bool  # ended by the runner's own stop
    tail: list[str]
    error: str = ""  # why it could not start

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.timed_out:
            return "it ran past the per-task time limit and was stopped"
        if self.code is not None and self.code < 0:
            return f"it was killed by signal {signal.Signals(-self.code).name}"
        return f"it exited with code {self.code}"


def guarded(argv: list[str]) -> list[str]:
    """`argv` run through the parent guard, where the platform has a parent-death signal."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-m", "chatroom.runner.parent_guard", str(os.getpid()), *argv]


class HarnessProcess:
    """Owns one run of a harness: start, follow its output, stop it, report how it ended."""

    def __init__(
        self,
        invocation: Invocation,
        *,
        env: Mapping[str, str],
        cwd: Path,
        on_line: Callable[[str], None],
    ) -> None:
        self.invocation = invocation
        self.env = dict(env)
        self.cwd = cwd
        self.on_line = on_line
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = False

    async def run(self, limit: float | None) -> Exit:
        program = self.invocation.argv[0]
        if shutil.which(program, path=self.env.get("PATH", os.defpath)) is None:
            # Found here, not by the guard, so the slot hears "could not be started", not a code.
            return Exit(None, False, False, [], f"it could not be started ({program}: not found)")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *guarded(list(self.invocation.argv)),
                stdin=asyncio.subprocess.PIPE
                if self.invocation.stdin is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            reason = f"it could not be started ({self.invocation.argv[0]}: {exc.strerror})"
            return Exit(None, False, False, [], reason)
        readers = [
            asyncio.create_task(self._read(self.proc.stdout, parse=True)),
            asyncio.create_task(self._read(self.proc.stderr, parse=False)),
            asyncio.create_task(self._feed()),
        ]
        timed_out = False
        try:
            await asyncio.wait_for(self.proc.wait(), limit)
        except TimeoutError:
            timed_out = True
            await self.stop()
        finally:
            if self.proc.returncode is None:  # cancelled: the runner is going away
                await self.stop()
            await asyncio.gather(*readers, return_exceptions=True)
        return Exit(
            self.proc.returncode, timed_out, self._stopping and not timed_out, list(self.tail)
        )

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        self._stopping = True
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await proc.wait()

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def _feed(self) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or self.invocation.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(self.invocation.stdin)
            await proc.stdin.drain()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.close()

    async def _read(self, stream: asyncio.StreamReader | None, *, parse: bool) -> None:
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the buffer: skip it
                continue
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\n")
            self.tail.append(line)
            if parse:
                self.on_line(line)
