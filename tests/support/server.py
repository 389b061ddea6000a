"""A real uvicorn process serving ``chatroom.schema.app:create_app`` on loopback, for the
tests and the benchmarks.

By default the test process binds the socket itself (port 0) and hands the fd to uvicorn,
so there is no window between "find a free port" and "bind it". The parent's
copy is closed right after spawning: otherwise the kernel would keep accepting
connections for a killed server and clients would hang instead of failing. With
``bind_fd=False`` uvicorn binds ``--host/--port`` itself, as ``chatroom serve`` runs it (the
benchmarks: its own listening socket is the one they measure, also with ``--workers``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from chatroom.cli.serve import APP_FACTORY, uvicorn_flags

REPO_ROOT = Path(__file__).resolve().parents[2]
# What a token looks like (chatroom.resolvers.auth.TOKEN_PREFIX and 256 random bits): no server
# log may ever hold one. tests/conftest.py scans every log this run's servers wrote.
TOKEN_SHAPE = re.compile(r"chr_[A-Za-z0-9_\-]{16,}")
# Every server log of this test run, for that scan.
LOG_PATHS: list[Path] = []
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Lets restart() take the same port back while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    # uvicorn --fd takes the socket as it is: without this, small writes wait for Nagle's
    # algorithm (about 40 ms per request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class HasBaseUrl(Protocol):
    @property
    def base_url(self) -> str: ...


async def healthz(server: HasBaseUrl, limit: float = 5.0) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of the server's /healthz; (0, {}) when nothing answers."""
    try:
        async with httpx.AsyncClient(timeout=limit, trust_env=False) as client:
            resp = await client.get(f"{server.base_url}/healthz")
    except httpx.TransportError:
        return 0, {}
    try:
        body = resp.json()
    except ValueError:
        body = {}
    return resp.status_code, body if isinstance(body, dict) else {}


class LiveServer:
    """One uvicorn process; ``start``/``stop``/``kill``/``restart`` are all async.

    Async so that waiting (for readiness, or for a graceful shutdown that
    closes websockets) never blocks the event loop the test's clients run on.
    """

    def __init__(
        self,
        db_url: str,
        log_path: Path,
        extra_env: Mapping[str, str] | None = None,
        app: str = APP_FACTORY,
        *,
        bind_fd: bool = True,
        workers: int | None = None,
        uvicorn_args: Sequence[str] = (),
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.db_url = db_url
        self.app = app
        self.bind_fd = bind_fd
        self.workers = workers
        self.uvicorn_args = list(uvicorn_args)
        self.preexec_fn = preexec_fn
        self.ready_timeout = READY_TIMEOUT
        self.log_path = log_path
        LOG_PATHS.append(log_path)
        self.extra_env: dict[str, str] = dict(extra_env or {})
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server not started"
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        """Everything the server printed so far (all restarts, stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DATABASE_URL"] = self.db_url
        env["PYTHONUNBUFFERED"] = "1"  # the log file must be readable while it runs
        # Import the working tree even if the package is not pip-installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.update(self.extra_env)
        return env

    async def start(self) -> None:
        assert not self.running, "server already running"
        if self.bind_fd:
            await self._start_on_fd()
            return
        # uvicorn binds the port: another process may take it between our probe and its bind.
        for attempt in range(3):
            self.port = self.port or _free_port()
            self._spawn(["--host", "127.0.0.1", "--port", str(self.port)])
            try:
                await self._wait_ready()
                return
            except RuntimeError:
                if attempt == 2 or "address already in use" not in self.log_text().lower():
                    raise
                self.port = 0

    async def _start_on_fd(self) -> None:
        sock = _bind(self.port)
        self.port = sock.getsockname()[1]
        fd = sock.fileno()
        try:
            self._spawn(["--fd", str(fd)], pass_fds=[fd])
        finally:
            sock.close()
        await self._wait_ready()

    def command(self, listen: list[str]) -> list[str]:
        """The server's command line, given where it listens."""
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--factory", *listen]
        cmd += ["--log-level", "warning", *uvicorn_flags(), *self.uvicorn_args]
        if self.workers:
            cmd += ["--workers", str(self.workers)]
        return cmd

    def _spawn(self, listen: list[str], pass_fds: Sequence[int] = ()) -> None:
        cmd = self.command(listen)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')} port={self.port}\n".encode())
            log.flush()
            # Popen only forks/execs (no waiting), and its wait(timeout) suits stop().
            self._proc = subprocess.Popen(
                cmd,
                pass_fds=pass_fds,
                env=self._env(),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec_fn,
            )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = "no attempt"
        # trust_env=False: a proxy from the environment must never see loopback traffic.
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.poll() is not None:
                    raise RuntimeError(
                        f"server exited with code {self._proc.returncode} before "
                        f"/healthz answered; log:\n{self.log_text()}"
                    )
                try:
                    resp = await client.get(f"{self.base_url}/healthz")
                    if resp.status_code == 200:
                        return
                    last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                await asyncio.sleep(0.05)
        await self.kill()
        raise RuntimeError(
            f"server not ready after {self.ready_timeout:.0f}s (last: {last}); "
            f"log:\n{self.log_text()}"
        )

    async def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL after a timeout."""
        if not self.running:
            return
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self._proc.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            await self.kill()

    async def kill(self) -> None:
        """SIGKILL: a crash, no shutdown hooks run."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        await asyncio.to_thread(self._proc.wait)

    async def restart(self) -> None:
        """Stop if still running, then start again on the same port."""
        await self.stop()
        await self.start()
