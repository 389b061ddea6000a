"""Shared helpers for the benchmarks: a database of our own, a real uvicorn server, a GraphQL
HTTP client, percentiles and the result table.

Database: a fresh database on DATABASE_URL's server (created here, dropped at the end), or on an
embedded PostgreSQL in a temporary directory when DATABASE_URL is unset. `bench.run` starts the
server once (`database_server()`) and every benchmark gets its own fresh database on it.

Server: `python -m uvicorn chatroom.schema.app:create_app --factory` in a subprocess on a free
loopback port (`--host/--port`, as `chatroom serve` runs it), with the environment we choose
(the per-token rate limit is off unless a benchmark says otherwise) and optional `--workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_FACTORY = "chatroom.schema.app:create_app"

# --- documents: the same selections the CLI sends (chatroom/cli/operations/*.graphql) ----------

CREATE_GUEST = """
mutation CreateGuestSession($displayName: String) {
  createGuestSession(displayName: $displayName) { token user { id displayName } }
}"""
CREATE_CHATROOM = """
mutation CreateChatroom($input: CreateChatroomInput!) {
  createChatroom(input: $input) {
    id name status teamId teamName teamRoles entryPoint createdAt lastEventSeq
  }
}"""
CREATE_AGENT_TOKEN = """
mutation CreateAgentToken($chatroomId: ID!, $role: String!) {
  createAgentToken(chatroomId: $chatroomId, role: $role) { token session { id scopeRole } }
}"""
SEND_MESSAGE = """
mutation SendMessage($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id seq } task { id status queuePosition } }
}"""
CLAIM_TASK = """
mutation ClaimTask($input: ClaimTaskInput!) {
  claimTask(input: $input) { success task { id status assignedTo attempt } }
}"""
SEND_HANDOFF = """
mutation SendHandoff($input: SendHandoffInput!) {
  sendHandoff(input: $input) {
    message { id seq targetRole }
    completedTasks { id status }
    newTask { id status assignedTo }
    promotedTask { id status }
  }
}"""
RENAME_CHATROOM = """
mutation RenameChatroom($chatroomId: ID!, $name: String!) {
  renameChatroom(chatroomId: $chatroomId, name: $name) { id name }
}"""
ROOM_EVENTS = """
subscription RoomEvents($chatroomId: ID!, $afterSeq: Int) {
  roomEvents(chatroomId: $chatroomId, afterSeq: $afterSeq) {
    seq kind createdAt
    message { id seq senderRole targetRole content type classification }
    task { id status assignedTo queuePosition }
    participant { role status }
    room { id name status }
  }
}"""


# --- process limits -----------------------------------------------------------------------------


def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (thousands of sockets). Also a preexec_fn."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def nofile_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the database -------------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    """`postgresql://...` for asyncpg.connect (accepts the SQLAlchemy form too)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DatabaseServer:
    """A PostgreSQL server benchmarks may create databases on."""

    def __init__(self, base_url: str, kind: str, postmaster_pid: int | None = None) -> None:
        self.base_url = base_url
        self.kind = kind  # "DATABASE_URL" or "embedded PostgreSQL"
        self.version = ""
        self.postmaster_pid = postmaster_pid  # the embedded server's (for CPU accounting)

    def url_for(self, database: str) -> str:
        return (
            make_url(libpq_url(self.base_url))
            .set(database=database)
            .render_as_string(hide_password=False)
        )

    async def _admin(self) -> Any:
        import asyncpg

        return await asyncpg.connect(libpq_url(self.base_url))

    @contextlib.asynccontextmanager
    async def fresh_database(self, prefix: str = "chatroom_bench") -> AsyncIterator[str]:
        """A new, migrated database (dropped afterwards, even if a server still holds it)."""
        from chatroom.db.migrate import upgrade_to_head

        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        admin = await self._admin()
        try:
            if not self.version:
                self.version = str(await admin.fetchval("SHOW server_version"))
            await admin.execute(
                f"CREATE DATABASE {_quote(name)} TEMPLATE template0 ENCODING 'UTF8'"
            )
        finally:
            await admin.close()
        url = self.url_for(name)
        try:
            await asyncio.to_thread(upgrade_to_head, url)
            yield url
        finally:
            admin = await self._admin()
            try:
                await admin.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
            finally:
                await admin.close()


_shared: DatabaseServer | None = None


@contextlib.asynccontextmanager
async def database_server() -> AsyncIterator[DatabaseServer]:
    """DATABASE_URL's server, or an embedded one in a temporary directory (stopped at the end).
    While it is open, `bench_database()` in this process creates its databases on it."""
    global _shared
    if _shared is not None:  # nested: reuse
        yield _shared
        return
    given = os.environ.get("DATABASE_URL")
    if given:
        _shared = DatabaseServer(given, "DATABASE_URL")
        try:
            yield _shared
        finally:
            _shared = None
        return

    from chatroom.db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="chatroom-bench-") as tmp:
        embedded = EmbeddedPostgres(Path(tmp))
        url = await asyncio.to_thread(embedded.start)
        pid_file = embedded.pgdata / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        _shared = DatabaseServer(url, "embedded PostgreSQL", postmaster)
        try:
            yield _shared
        finally:
            _shared = None
            await asyncio.to_thread(embedded.stop)


@contextlib.asynccontextmanager
async def bench_database(prefix: str = "chatroom_bench") -> AsyncIterator[str]:
    """A fresh migrated database (libpq URL) on the shared server, or on one started for it."""
    async with database_server() as server, server.fresh_database(prefix) as url:
        yield url


def database_description() -> str:
    server = _shared
    if server is None:
        return "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL"
    return f"{server.kind} (PostgreSQL {server.version})" if server.version else server.kind


# --- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One uvicorn process (or a supervisor with `workers` children) serving the app."""

    READY_TIMEOUT = 60.0

    def __init__(
        self,
        db_url: str,
        *,
        workers: int | None = None,
        env: Mapping[str, str] | None = None,
        rate_limit: bool = False,
        app: str = APP_FACTORY,
    ) -> None:
        self.db_url = db_url
        self.app = app
        self.workers = workers
        self.extra_env = dict(env or {})
        if not rate_limit:
            self.extra_env.setdefault("CHATROOM_MUTATIONS_PER_SECOND", "0")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        # Lives as long as this object (closed in __aexit__): the server's output, for errors.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="chatroom-bench-server-", suffix=".log"
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    async def start(self) -> None:
        # --host/--port, as `chatroom serve` runs it, and not a pre-bound --fd: uvicorn wraps an
        # inherited fd as AF_UNIX, so the event loop never sets TCP_NODELAY on its connections
        # and every response on a kept-alive connection waits ~40 ms (Nagle + delayed ACK).
        # The price is a small window in which another process could take the free port.
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._spawn()
                await self._wait_ready()
                return
            except RuntimeError:
                if attempt == 2 or "address already in use" not in self.log_text().lower():
                    raise

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["DATABASE_URL"] = self.db_url
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.update(self.extra_env)
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--factory"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--log-level", "warning", "--no-access-log", "--backlog", "4096"]
        if self.workers:
            cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
        )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.READY_TIMEOUT
        last = "no answer"
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early; log:\n{self.log_text()}")
                try:
                    resp = await client.get(f"{self.base_url}/healthz")
                    if resp.status_code == 200:
                        return
                    last = f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                await asyncio.sleep(0.1)
        await self.stop()
        raise RuntimeError(f"server not ready ({last}); log:\n{self.log_text()}")

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=60.0, trust_env=False) as client:
            resp = await client.get(f"{self.base_url}/healthz")
            resp.raise_for_status()
            result: dict[str, Any] = resp.json()
            return result

    def rss_bytes(self) -> int:
        """VmRSS of the server process (the supervisor when running with workers)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def worker_pids(self) -> list[int]:
        """The processes serving requests: the children with --workers, else the process."""
        if not self.workers:
            return [self.pid]
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in path.read_text().split()]

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self.proc = proc  # keep the pid for the log; it is gone

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self._log.close()


# --- a GraphQL HTTP client ----------------------------------------------------------------------


class GraphQLError(RuntimeError):
    pass


class Client:
    """One keep-alive HTTP/1.1 connection's worth of client (httpx), one bearer token."""

    def __init__(self, url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.http = httpx.AsyncClient(
            headers=headers,
            timeout=60.0,
            trust_env=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def execute(self, document: str, **variables: Any) -> dict[str, Any]:
        resp = await self.http.post(self.url, json={"query": document, "variables": variables})
        body = resp.json()
        if body.get("errors"):
            raise GraphQLError(str(body["errors"]))
        data: dict[str, Any] = body["data"]
        return data

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def new_owner(url: str, name: str = "Bench") -> str:
    """A guest account; returns its token."""
    async with Client(url) as client:
        data = await client.execute(CREATE_GUEST, displayName=name)
        token: str = data["createGuestSession"]["token"]
        return token


async def new_room(client: Client, name: str, team: str = "pair") -> str:
    data = await client.execute(CREATE_CHATROOM, input={"teamId": team, "name": name})
    room_id: str = data["createChatroom"]["id"]
    return room_id


# --- where the CPU went ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Proc:
    ppid: int
    own: float  # CPU seconds of the process itself
    total: float  # ... plus its reaped children's (what its parent inherits when it is reaped)
    cmdline: str


def _processes() -> dict[int, _Proc]:
    """Every process we can read, by pid."""
    found: dict[int, _Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = [int(f) for f in stat[stat.rindex(")") + 2 :].split()[1:15]]
        own = (fields[10] + fields[11]) / _TICK  # utime, stime
        children = (fields[12] + fields[13]) / _TICK  # cutime, cstime
        found[int(entry.name)] = _Proc(fields[0], own, own + children, cmdline)
    return found


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


def _descendants(root: int, procs: dict[int, _Proc]) -> set[int]:
    """root and everything below it (empty if root is gone)."""
    if root not in procs:
        return set()
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, ()))
    return out


def _tree_cpu(root: int, before: dict[int, _Proc], after: dict[int, _Proc]) -> float:
    """CPU used by a process tree between two snapshots, including members that ended in
    between (their time reaches their reaper's children time, and the reaper is in the tree)."""
    if root not in before or root not in after:
        return 0.0
    end = sum(after[p].total for p in _descendants(root, after))
    return end - sum(before[p].total for p in _descendants(root, before))


@dataclass
class CpuShares:
    """CPU used during a measurement, in cores (1.0 = one core busy all the time)."""

    seconds: float
    server: float
    postgres: float
    bench: float
    other: float
    cores: int

    def text(self) -> str:
        return (
            f"CPU in cores (of {self.cores}): server {self.server:.2f}, "
            f"PostgreSQL {self.postgres:.2f}, bench clients {self.bench:.2f}, "
            f"other processes {self.other:.2f}"
        )


class CpuMeter:
    """Where the machine's CPU went between start() and stop(): the server's process tree;
    PostgreSQL working for us (the embedded server's whole process tree, or on DATABASE_URL's
    server the backends whose process title names our database: `database` is a name or a
    part of one); this process and its other children (the clients); and everything else on
    the machine (other people's work)."""

    def __init__(self, server_pid: int | None, database: str | None) -> None:
        self.server_pid = server_pid
        self.database = database
        self.postmaster = _shared.postmaster_pid if _shared is not None else None
        self._start: tuple[float, dict[int, _Proc], float] | None = None

    def start(self) -> CpuMeter:
        self._start = (time.monotonic(), _processes(), _machine_busy())
        return self

    def _backends(self, procs: dict[int, _Proc]) -> set[int]:
        if not self.database:
            return set()
        return {
            pid
            for pid, proc in procs.items()
            if proc.cmdline.startswith("postgres:") and self.database in proc.cmdline
        }

    def stop(self) -> CpuShares:
        assert self._start is not None, "start() first"
        began, before, busy0 = self._start
        after, busy1 = _processes(), _machine_busy()
        elapsed = max(1e-9, time.monotonic() - began)
        mine = _tree_cpu(os.getpid(), before, after)
        server = _tree_cpu(self.server_pid, before, after) if self.server_pid else 0.0
        if self.postmaster:
            postgres = _tree_cpu(self.postmaster, before, after)
        else:  # only the live backends' own time: an ended one's goes to "other"
            postgres = sum(
                after[p].own - (before[p].own if p in before else 0.0)
                for p in self._backends(after)
            )
        other = max(0.0, busy1 - busy0 - mine - postgres)
        return CpuShares(
            elapsed,
            server / elapsed,
            postgres / elapsed,
            max(0.0, mine - server) / elapsed,
            other / elapsed,
            os.cpu_count() or 1,
        )


def database_name(url: str) -> str:
    return make_url(url).database or ""


# --- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# --- the result table ---------------------------------------------------------------------------


@dataclass
class Row:
    """One figure of the summary table. `met` is None for figures without a target."""

    figure: str
    value: str
    baseline: str = ""
    ratio: str = ""  # the ratio to the baseline and/or the target
    met: bool | None = None


def met_text(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Plain aligned columns: the first left-aligned, the rest right-aligned."""
    body = [list(map(str, r)) for r in rows]
    widths = [len(h) for h in headers]
    for r in body:
        for i, cell in enumerate(r):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "-" * len(line(headers))
    return "\n".join([line(headers), rule, *(line(r) for r in body)])


def summary_table(rows: Iterable[Row]) -> str:
    return format_table(
        ("figure", "value", "baseline", "ratio / target", "met?"),
        [(r.figure, r.value, r.baseline, r.ratio, met_text(r.met)) for r in rows],
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def machine() -> str:
    """The machine, for the report."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
