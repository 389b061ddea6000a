"""Shared helpers for the benchmarks, on top of the tests' shared layer (tests/support): a
database of our own, a real uvicorn server, a one-connection GraphQL client, the handoff cycle,
percentiles and the result table.

The benchmarks build on tests/support rather than repeat it: the uvicorn process is
`tests.support.server.LiveServer`, databases are made and dropped by `tests.support.pg.PgServer`,
setup calls go through `tests.support.api.Api`, and every timed step sends the CLI's own
document (`chatroom/cli/operations/*.graphql`, loaded by the CLI's loader), so what is measured
is what the product sends. `python -m bench.run` runs from the repository root, where `tests` is
importable.

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
import json
import math
import os
import platform
import resource
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from tests.support.api import Api, until
from tests.support.operations import cli_operation, web_operation
from tests.support.pg import PgServer, asyncpg_dsn
from tests.support.server import APP_FACTORY, LiveServer
from tests.support.server import REPO_ROOT as REPO_ROOT

# --- documents: what the CLI (and the web page) send --------------------------------------------

CREATE_AGENT_TOKEN = cli_operation("CreateAgentToken")
SEND_MESSAGE = cli_operation("SendMessage")
CLAIM_TASK = cli_operation("ClaimTask")
SEND_HANDOFF = cli_operation("SendHandoff")
CANCEL_TASK = cli_operation("CancelTask")
TASK_AVAILABLE = cli_operation("TaskAvailable")
ROOM_EVENTS = cli_operation("RoomEvents")
RENAME_CHATROOM = web_operation("RenameChatroom")  # ($id, $name): the CLI never renames


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


class DatabaseServer:
    """A PostgreSQL server benchmarks may create databases on (`tests.support.pg.PgServer`)."""

    def __init__(self, base_url: str, kind: str, postmaster_pid: int | None = None) -> None:
        self.pg = PgServer(base_url, make_url(asyncpg_dsn(base_url)).database or "postgres")
        self.kind = kind  # "DATABASE_URL" or "embedded PostgreSQL"
        self.version = ""
        self.postmaster_pid = postmaster_pid  # the embedded server's (for CPU accounting)

    @contextlib.asynccontextmanager
    async def fresh_database(self, prefix: str = "chatroom_bench") -> AsyncIterator[str]:
        """A new, migrated database (dropped afterwards, even if a server still holds it); its
        libpq URL. The name holds this process's pid (`CpuMeter` finds its backends by it)."""
        from chatroom.db.migrate import upgrade_to_head

        if not self.version:
            async with self.pg.admin() as admin:
                self.version = str(await admin.fetchval("SHOW server_version"))
        db = await self.pg.create_database(self.pg.unique_name(f"{prefix}_"))
        try:
            await asyncio.to_thread(upgrade_to_head, db.url)
            yield db.dsn
        finally:
            await self.pg.drop_database(db.name)


_shared: DatabaseServer | None = None


@contextlib.asynccontextmanager
async def database_server(commit_timestamps: bool = False) -> AsyncIterator[DatabaseServer]:
    """DATABASE_URL's server, or an embedded one in a temporary directory (stopped at the end).
    While it is open, `bench_database()` in this process creates its databases on it.
    `commit_timestamps`: the embedded server runs with track_commit_timestamp = on (a setting
    that needs a restart; DATABASE_URL's server is used as it is)."""
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
        try:
            if commit_timestamps:
                import asyncpg

                conn = await asyncpg.connect(asyncpg_dsn(url))
                await conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
                await conn.close()
                await asyncio.to_thread(embedded.stop)
                url = await asyncio.to_thread(embedded.start)
            pid_file = embedded.pgdata / "postmaster.pid"
            postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
            _shared = DatabaseServer(url, "embedded PostgreSQL", postmaster)
            yield _shared
        finally:
            _shared = None
            await asyncio.to_thread(embedded.stop)


@contextlib.asynccontextmanager
async def bench_database(
    prefix: str = "chatroom_bench", commit_timestamps: bool = False
) -> AsyncIterator[str]:
    """A fresh migrated database (libpq URL) on the shared server, or on one started for it."""
    async with (
        database_server(commit_timestamps) as server,
        server.fresh_database(prefix) as url,
    ):
        yield url


def database_description() -> str:
    server = _shared
    if server is None:
        return "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL"
    return f"{server.kind} (PostgreSQL {server.version})" if server.version else server.kind


# --- the server ---------------------------------------------------------------------------------


class Server(LiveServer):
    """One uvicorn process (or a supervisor with `workers` children) serving the app, on
    `--host/--port` and not a pre-bound `--fd`: uvicorn wraps an inherited fd as AF_UNIX, so
    the event loop never sets TCP_NODELAY on its connections, and with `--workers` each child
    would need the fd. Its log goes to a temporary file (shown when it fails to start)."""

    def __init__(
        self,
        db_url: str,
        *,
        workers: int | None = None,
        env: Mapping[str, str] | None = None,
        rate_limit: bool = False,
        app: str = APP_FACTORY,
    ) -> None:
        extra_env = dict(env or {})
        if not rate_limit:
            extra_env.setdefault("CHATROOM_MUTATIONS_PER_SECOND", "0")
        # Lives as long as this object (closed in __aexit__): the server's output, for errors.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="chatroom-bench-server-", suffix=".log"
        )
        super().__init__(
            db_url,
            Path(self._log.name),
            extra_env,
            app,
            bind_fd=False,
            workers=workers,
            uvicorn_args=["--no-access-log", "--backlog", "4096"],
            preexec_fn=raise_nofile,
        )
        self.ready_timeout = 60.0

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
    """One keep-alive HTTP/1.1 connection's worth of client (httpx), one bearer token: the
    measuring client (gql would add its own parsing to every timed request)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.http = httpx.AsyncClient(
            headers=headers,
            timeout=60.0,
            trust_env=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def execute(self, document: str, /, **variables: Any) -> dict[str, Any]:
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
        return str((await Api(client).create_guest(name))["token"])


async def new_room(client: Client, name: str, team: str = "pair") -> str:
    return str((await Api(client).create_room(teamId=team, name=name))["id"])


async def agent_tokens(client: Client, room: str, n: int, role: str = "reviewer") -> list[str]:
    """n agent tokens of one role of the room (each token may hold only so many sockets)."""
    tokens = []
    for _ in range(n):
        data = await client.execute(CREATE_AGENT_TOKEN, chatroomId=room, role=role)
        tokens.append(str(data["createAgentToken"]["token"]))
    return tokens


async def participants(client: Client, room: str) -> dict[str, dict[str, Any]]:
    """The room's participants by role ({role, status, lastSeenAt})."""
    return {p["role"]: p for p in (await Api(client).room(room))["participants"]}


async def ws_subscriber(
    ws_url: str, token: str, compression: str | None = None, **connect: Any
) -> Any:
    """A graphql-transport-ws websocket (raw `websockets`, no client library between the
    socket and the clock), initialised with the token and acknowledged."""
    from websockets.asyncio.client import connect as ws_connect

    ws = await ws_connect(
        ws_url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        proxy=None,
        compression=compression,
        **connect,
    )
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    ack = json.loads(await ws.recv())
    assert ack["type"] == "connection_ack", ack
    return ws


async def subscribe(
    ws_url: str,
    token: str,
    query: str,
    variables: dict[str, Any],
    on_next: Callable[[dict[str, Any]], None],
    on_subscribed: Callable[[], None] = lambda: None,
) -> None:
    """One subscription on a websocket of its own (`ws_subscriber`): `on_subscribed()` once
    the subscribe message is sent, `on_next(data)` per result, pongs to pings; runs until
    cancelled, and raises if the server ends or refuses it."""
    ws = await ws_subscriber(ws_url, token)
    async with ws:
        payload = {"query": query, "variables": variables}
        await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": payload}))
        on_subscribed()
        async for raw in ws:
            msg = json.loads(raw)
            if msg["type"] == "next":
                assert not msg["payload"].get("errors"), msg
                on_next(msg["payload"]["data"])
            elif msg["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif msg["type"] in ("error", "complete"):
                raise RuntimeError(f"subscription ended: {msg}")


async def claim(client: Client, room: str, task_id: str, role: str) -> None:
    """claimTask with the CLI's document; it must win."""
    data = await client.execute(
        CLAIM_TASK, input={"chatroomId": room, "taskId": task_id, "role": role}
    )
    assert data["claimTask"]["success"], data


async def builder_holds(client: Client, room: str, content: str = "Bench.") -> str:
    """A user request in an idle room, claimed by the builder; the task's id."""
    sent = await client.execute(SEND_MESSAGE, input={"chatroomId": room, "content": content})
    task_id: str = sent["sendMessage"]["task"]["id"]
    await claim(client, room, task_id, "builder")
    return task_id


async def handoff(client: Client, room: str, sender: str, target: str, text: str) -> dict[str, Any]:
    """sendHandoff with the CLI's document and a fresh idempotency key, as the CLI sends it."""
    data = await client.execute(
        SEND_HANDOFF,
        input={
            "chatroomId": room,
            "senderRole": sender,
            "targetRole": target,
            "content": text,
            "idempotencyKey": f"bench-{uuid.uuid4()}",
        },
    )
    result: dict[str, Any] = data["sendHandoff"]
    return result


async def until_status(
    client: Client, room: str, role: str, status: str, within: float, since: object = None
) -> None:
    """Poll the room until `role` has `status` (and, given `since`, a lastSeenAt other than
    it: registering a waiter stamps lastSeenAt, a handoff does not)."""

    async def reached() -> bool:
        part = (await participants(client, room))[role]
        return part["status"] == status and (since is None or part["lastSeenAt"] != since)

    await until(reached, f"the {role} becomes {status}", within, every=0.005)


# --- the handoff cycle ----------------------------------------------------------------------------

STEP_NAMES = (
    "sendMessage",
    "claimTask",
    "sendHandoff (to agent)",
    "claimTask (handoff)",
    "sendHandoff (to user)",
)
STEP_KINDS = ("message", "claim", "handoff", "claim", "handoff")
StepRecord = Callable[[int, float, float], None]


async def handoff_cycle(
    client: Client,
    room_id: str,
    n: int,
    record: StepRecord,
    before_step: Callable[[], None] = lambda: None,
) -> None:
    """One request's life in a pair room, each step one mutation with the CLI's document:
    user message -> builder claims -> builder hands off to reviewer -> reviewer claims ->
    reviewer hands off to the user. `record(step, started, ended)` after each step (its index
    in STEP_NAMES; perf_counter times); `before_step()` may raise to stop the cycle."""

    async def step(i: int, document: str, **input: Any) -> dict[str, Any]:
        before_step()
        started = time.perf_counter()
        data = await client.execute(document, input={"chatroomId": room_id, **input})
        record(i, started, time.perf_counter())
        return data

    sent = (await step(0, SEND_MESSAGE, content=f"request {n}"))["sendMessage"]
    assert sent["task"]["status"] == "PENDING", sent
    claimed = await step(1, CLAIM_TASK, taskId=sent["task"]["id"], role="builder")
    assert claimed["claimTask"]["success"], claimed
    handed = await step(
        2, SEND_HANDOFF, senderRole="builder", targetRole="reviewer", content=f"review {n}"
    )
    task_id = handed["sendHandoff"]["newTask"]["id"]
    claimed = await step(3, CLAIM_TASK, taskId=task_id, role="reviewer")
    assert claimed["claimTask"]["success"], claimed
    await step(4, SEND_HANDOFF, senderRole="reviewer", targetRole="user", content=f"done {n}")


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


def latency_report(benchmark: str, figures: Mapping[str, Sequence[float]]) -> str:
    """What a latency benchmark prints: where it ran, then figure, n, p50, p99 per figure (its
    samples in seconds)."""
    rows = [
        (figure, str(len(values)), ms(percentile(values, 50)), ms(percentile(values, 99)))
        for figure, values in figures.items()
    ]
    head = f"{benchmark}: {database_description()}; {machine()}"
    return head + "\n" + format_table(("figure", "n", "p50", "p99"), rows)


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


def print_report(detail: str, rows: Iterable[Row]) -> None:
    """What a benchmark run on its own prints: its detail table, the summary, the machine."""
    print(detail)
    print()
    print(summary_table(rows))
    print(f"\nmachine: {machine()}")
