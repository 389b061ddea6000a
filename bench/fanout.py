"""One event to many `roomEvents` subscribers of one room on ONE server process, and the memory
of 10,000 idle subscriptions.

    .venv/bin/python -m bench.fanout [--quick] [--subscribers 1000] [--events 20] [--idle 10000]

Delivery latency: the subscribers live in separate client processes (raw `websockets`, the
graphql-transport-ws protocol, the same selection as the CLI's RoomEvents document), one
connection each, spread over several agent tokens so the per-token connection limit
(CHATROOM_MAX_CONNECTIONS_PER_TOKEN, 50) holds. The driver renames the room (one mutation,
one ROOM_UPDATED event) and every client process stamps each delivery with CLOCK_MONOTONIC,
which all processes on the machine share. The commit happens between sending the mutation and
receiving its response, so latency is measured from the response (a lower bound; deliveries
that beat the response count as 0) and from the request (an upper bound). The next event is
sent only when every subscriber has the previous one. Baseline: the same events to a single
subscriber, in the same run.

Memory: a fresh server, warmed up (one subscription opened and closed), idle RSS read from
/proc/<pid>/status; then 10,000 subscriptions (200 connections x 50, raising
CHATROOM_MAX_SUBSCRIPTIONS_PER_CONNECTION for this server), opened in batches of 200 that
/healthz must count before the next (a burst makes the server fail some: docs/benchmarks.md),
within a time budget (100 s; 45 s with --quick). The figure is the RSS growth, per live
subscription and projected to 10,000 when fewer were open when the budget ran out; failures
to open are counted and shown. Then 5 s of idle CPU with them open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    RENAME_CHATROOM,
    REPO_ROOT,
    ROOM_EVENTS,
    Client,
    CpuMeter,
    CpuShares,
    Row,
    Server,
    agent_tokens,
    bench_database,
    database_description,
    database_name,
    format_table,
    new_owner,
    new_room,
    percentile,
    print_report,
    raise_nofile,
    ws_subscriber,
)

P99_TARGET = 0.150  # issue 12 (was 0.250)
MEMORY_TARGET = 1 << 30
PER_TOKEN = 50  # CHATROOM_MAX_CONNECTIONS_PER_TOKEN's default
CLIENT_PROCESSES = 2
_EVENT_NAME = re.compile(rb'"name":\s*"fanout-(\d+)"')

# --- the client process -------------------------------------------------------------------------


async def _client_main(config: dict[str, Any]) -> None:
    """Open the connections and subscriptions, report progress on stdout, stop on stdin."""
    raise_nofile()
    url, room = config["url"], config["room"]
    tokens: list[str] = config["tokens"]
    n_conns, per_conn = config["connections"], config["subscriptions"]
    expect = n_conns * per_conn
    received: list[tuple[float, bytes]] = []
    counts: dict[int, int] = {}
    out = sys.stdout

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    def note(stamp: float, text: bytes) -> None:
        received.append((stamp, text))
        match = _EVENT_NAME.search(text)
        if match:
            i = int(match.group(1))
            counts[i] = counts.get(i, 0) + 1
            if counts[i] == expect:
                say(f"got {i}")

    subscribe = [
        json.dumps(
            {
                "id": str(j),
                "type": "subscribe",
                "payload": {"query": ROOM_EVENTS, "variables": {"chatroomId": room}},
            }
        )
        for j in range(per_conn)
    ]
    gate = asyncio.Semaphore(25)

    async def open_one(i: int) -> Any:
        async with gate:
            ws = await ws_subscriber(
                url,
                tokens[i // PER_TOKEN],
                # Offer permessage-deflate like browsers and gql do (unless told not to).
                compression=config.get("compression", "deflate"),
                open_timeout=120,
                ping_interval=None,
                max_size=None,
            )
            for message in subscribe:
                await ws.send(message)
            return ws

    async def read(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                stamp = time.monotonic()
                data = message.encode() if isinstance(message, str) else message
                if b'"ping"' in data[:40]:
                    await ws.send('{"type":"pong"}')
                    continue
                note(stamp, data)

    # Commands on stdin: "open <k>" opens k more connections (and their subscriptions) and
    # answers "opened <total>"; "stop" closes everything and reports.
    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    say("ready")
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not command or command[0] == "stop":
            break
        k = min(int(command[1]), n_conns - len(sockets))
        fresh = await asyncio.gather(*(open_one(len(sockets) + i) for i in range(k)))
        sockets += fresh
        readers += [asyncio.create_task(read(ws)) for ws in fresh]
        say(f"opened {len(sockets)}")
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    for task in readers:
        task.cancel()
    deliveries: dict[int, list[float]] = {}
    errors = 0
    for stamp, text in received:
        match = _EVENT_NAME.search(text)
        if match:
            deliveries.setdefault(int(match.group(1)), []).append(stamp)
        elif b'"error"' in text or b'"errors"' in text:
            errors += 1
    say("result " + json.dumps({"deliveries": deliveries, "errors": errors}))


def client_entry() -> None:
    config = json.loads(sys.stdin.readline())
    try:
        import uvloop

        uvloop.run(_client_main(config))
    except ImportError:
        asyncio.run(_client_main(config))


class ClientProcess:
    """One subscriber process, driven over its stdin/stdout."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.got: set[int] = set()
        self.changed = asyncio.Event()
        self.result: dict[str, Any] | None = None
        self.opened: asyncio.Queue[int] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._done = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fanout",
            "--client",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,
            preexec_fn=raise_nofile,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(self.config) + "\n").encode())
        await self.proc.stdin.drain()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line == "ready":
                self._ready.set()
            elif line.startswith("opened "):
                self.opened.put_nowait(int(line[7:]))
            elif line.startswith("got "):
                self.got.add(int(line[4:]))
                self.changed.set()
            elif line.startswith("result "):
                self.result = json.loads(line[7:])
        self._ready.set()
        self._done.set()
        self.changed.set()

    async def ready(self, within: float) -> None:
        await asyncio.wait_for(self._ready.wait(), within)
        if self._done.is_set():
            raise RuntimeError("a subscriber process ended before it was ready")

    async def open(self, k: int) -> int:
        """Open k more connections (with their subscriptions); returns how many are open."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"open {k}\n".encode())
        await self.proc.stdin.drain()
        getter = asyncio.ensure_future(self.opened.get())
        done = asyncio.ensure_future(self._done.wait())
        await asyncio.wait([getter, done], return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        if not getter.done():
            getter.cancel()
            raise RuntimeError("a subscriber process ended while opening connections")
        return getter.result()

    async def stop(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.proc.stdin.write(b"stop\n")
            await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), 120)
        except TimeoutError:
            # Only when it hangs: kill() polls first, and so would reap a child that just
            # exited behind the back of asyncio's child watcher.
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        await self._done.wait()
        return self.result or {"deliveries": {}, "errors": -1}


def _configs(
    url: str, room: str, tokens: list[str], connections: int, per_conn: int, processes: int
) -> list[dict[str, Any]]:
    """Split the connections over processes; each process gets whole tokens."""
    tokens_needed = -(-connections // PER_TOKEN)
    assert len(tokens) >= tokens_needed
    configs = []
    per_proc = -(-tokens_needed // processes)  # tokens per process
    left = connections
    for p in range(processes):
        mine = tokens[p * per_proc : (p + 1) * per_proc]
        n = min(left, len(mine) * PER_TOKEN)
        if n <= 0:
            break
        configs.append(
            {"url": url, "room": room, "tokens": mine, "connections": n, "subscriptions": per_conn}
        )
        left -= n
    return configs


STALL_SECONDS = 35.0  # longer than the server's pool timeout (30 s): a stuck one has failed


async def _wait_subscribers(server: Server, n: int) -> int:
    """Poll /healthz until the server counts n subscribers, or until the count has not moved
    for STALL_SECONDS (some subscriptions failed); returns the count."""
    seen, since = -1, time.monotonic()
    while True:
        count = int((await server.health())["subscribers"])  # waits for a pooled connection too
        if count >= n:
            return count
        if count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            return count
        await asyncio.sleep(0.25)


BATCH_SUBSCRIPTIONS = 200


@dataclass
class Opened:
    seconds: float
    requested: int
    sent: int  # subscriptions asked for before the time budget ran out
    live: int  # what /healthz counted at the end (the rest of `sent` failed)

    @property
    def failed(self) -> int:
        return self.sent - self.live


async def open_paced(
    server: Server,
    clients: list[ClientProcess],
    per_conn: int,
    base: int = 0,
    budget: float | None = None,
) -> Opened:
    """Open every client's connections in batches of about BATCH_SUBSCRIPTIONS subscriptions,
    waiting for /healthz to count each batch before the next, until all are open or `budget`
    seconds have passed. Opening thousands at once makes the server fail some of them (a
    subscription's first reads wait on the database pool past its 30 s timeout: see
    docs/benchmarks.md); the pace here makes that rarer, and what still fails is counted."""
    started = time.monotonic()
    per_batch = max(1, BATCH_SUBSCRIPTIONS // per_conn // len(clients))
    requested = sum(c.config["connections"] for c in clients) * per_conn
    opened = [0] * len(clients)
    live = base
    while True:
        todo = [
            (i, min(per_batch, c.config["connections"] - opened[i])) for i, c in enumerate(clients)
        ]
        todo = [(i, k) for i, k in todo if k > 0]
        out_of_time = budget is not None and time.monotonic() - started > budget
        if not todo or out_of_time:
            sent = sum(opened) * per_conn
            return Opened(time.monotonic() - started, requested, sent, live - base)
        totals = await asyncio.gather(*(clients[i].open(k) for i, k in todo))
        added = 0
        for (i, _), total in zip(todo, totals, strict=True):
            added += (total - opened[i]) * per_conn
            opened[i] = total
        live = await _wait_subscribers(server, live + added)


# --- delivery latency ---------------------------------------------------------------------------


@dataclass
class Latency:
    subscribers: int
    events: int
    from_response: list[float] = field(default_factory=list)
    from_request: list[float] = field(default_factory=list)
    missing: int = 0
    errors: int = 0
    opened: Opened | None = None
    cpu: CpuShares | None = None

    def p(self, q: float, upper: bool = False) -> float:
        return percentile(self.from_request if upper else self.from_response, q)


async def deliver(
    server: Server, owner: Client, room: str, tokens: list[str], subscribers: int, events: int,
    processes: int, first_event: int, database: str,
) -> Latency:  # fmt: skip
    configs = _configs(server.ws_url, room, tokens, subscribers, 1, processes)
    clients = [ClientProcess(c) for c in configs]
    result = Latency(subscribers, events)
    try:
        for client in clients:
            await client.start()
        for client in clients:
            await client.ready(60)
        result.opened = await open_paced(server, clients, 1)
        sent: dict[int, tuple[float, float]] = {}
        meter = CpuMeter(server.pid, database)
        warmup = 2
        for k in range(warmup + events):
            i = first_event + k
            if k == warmup:
                meter.start()
            for client in clients:
                client.changed.clear()
            t0 = time.monotonic()
            await owner.execute(RENAME_CHATROOM, id=room, name=f"fanout-{i}")
            t1 = time.monotonic()
            if k >= warmup:
                sent[i] = (t0, t1)
            deadline = t1 + 30
            while not all(i in c.got for c in clients) and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.gather(*(c.changed.wait() for c in clients if i not in c.got)),
                        max(0.01, deadline - time.monotonic()),
                    )
                for client in clients:
                    client.changed.clear()
            await asyncio.sleep(0.1)  # let the server settle before the next event
        result.cpu = meter.stop()
    finally:
        outcomes = await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        result.errors += outcome["errors"]
        for key, stamps in outcome["deliveries"].items():
            i = int(key)
            if i not in sent:
                continue
            t0, t1 = sent[i]
            result.from_response += [max(0.0, s - t1) for s in stamps]
            result.from_request += [s - t0 for s in stamps]
    result.missing = events * subscribers - len(result.from_response)
    return result


# --- idle memory --------------------------------------------------------------------------------


@dataclass
class Memory:
    subscriptions: int
    connections: int
    idle_rss: int
    loaded_rss: int
    opened: Opened
    idle_cpu: CpuShares | None = None

    @property
    def projected(self) -> float:
        """The growth for all the subscriptions asked for (linear, when fewer are live)."""
        return self.per_subscription * self.subscriptions

    @property
    def growth(self) -> int:
        return self.loaded_rss - self.idle_rss

    @property
    def per_subscription(self) -> float:
        return self.growth / max(1, self.opened.live)


async def idle_memory(
    db_url: str, subscriptions: int, per_conn: int = 50, budget: float | None = None
) -> Memory:
    connections = -(-subscriptions // per_conn)
    env = {"CHATROOM_MAX_SUBSCRIPTIONS_PER_CONNECTION": str(per_conn)}
    async with Server(db_url, env=env) as server:
        token = await new_owner(server.http_url, "Memory")
        async with Client(server.http_url, token) as owner:
            room = await new_room(owner, "memory")
            tokens = await agent_tokens(owner, room, -(-connections // PER_TOKEN))
            # Warm up: every code path the subscriptions use has run once before the idle RSS.
            warm = ClientProcess(_configs(server.ws_url, room, tokens, 1, 1, 1)[0])
            await warm.start()
            await warm.ready(60)
            await open_paced(server, [warm], 1)
            await owner.execute(RENAME_CHATROOM, id=room, name="fanout-0")
            await asyncio.sleep(0.5)
            await warm.stop()
            await asyncio.sleep(1.0)
            idle = server.rss_bytes()
            clients = [
                ClientProcess(c)
                for c in _configs(server.ws_url, room, tokens, connections, per_conn, 1)
            ]
            try:
                for client in clients:
                    await client.start()
                for client in clients:
                    await client.ready(60)
                opened = await open_paced(server, clients, per_conn, budget=budget)
                # Idle: what the open subscriptions cost in CPU with nothing happening.
                meter = CpuMeter(server.pid, database_name(db_url)).start()
                await asyncio.sleep(5.0)
                idle_cpu = meter.stop()
                loaded = max([server.rss_bytes() for _ in range(3)])
            finally:
                for client in clients:
                    await client.stop()
    return Memory(subscriptions, connections, idle, loaded, opened, idle_cpu)


# --- the benchmark ------------------------------------------------------------------------------


@dataclass
class Report:
    single: Latency
    many: Latency
    memory: Memory | None


async def measure(
    quick: bool = False,
    subscribers: int = 1000,
    events: int | None = None,
    idle: int | None = 10_000,
) -> Report:
    raise_nofile()
    events = events or (10 if quick else 20)
    async with bench_database("chatroom_bench_fo") as db_url:
        async with Server(db_url) as server:
            token = await new_owner(server.http_url, "Fanout")
            async with Client(server.http_url, token) as owner:
                room = await new_room(owner, "fanout")
                tokens = await agent_tokens(owner, room, -(-subscribers // PER_TOKEN))
                name = database_name(db_url)
                single = await deliver(server, owner, room, tokens, 1, events, 1, 0, name)
                many = await deliver(
                    server, owner, room, tokens, subscribers, events, CLIENT_PROCESSES, 1000, name
                )
        budget = 45.0 if quick else 100.0
        memory = await idle_memory(db_url, idle, budget=budget) if idle else None
    return Report(single, many, memory)


def detail_table(report: Report) -> str:
    rows = []
    for lat in (report.single, report.many):
        rows.append(
            (
                f"{lat.subscribers} subscriber(s), {lat.events} events",
                f"{lat.p(50) * 1000:.1f}",
                f"{lat.p(99) * 1000:.1f}",
                f"{max(lat.from_response, default=0) * 1000:.1f}",
                f"{lat.p(50, True) * 1000:.1f}",
                f"{lat.p(99, True) * 1000:.1f}",
                str(lat.missing),
                f"{lat.opened.seconds:.1f}" if lat.opened else "-",
                str(lat.opened.failed) if lat.opened else "-",
            )
        )
    headers = (
        "delivery",
        "p50 ms",
        "p99 ms",
        "max ms",
        "p50 upper",
        "p99 upper",
        "missing",
        "subscribe s",
        "failed",
    )
    lines = [
        f"fan-out: {database_description()}; one server process; latency from the mutation's "
        "response (upper bound: from its request)",
        format_table(headers, rows),
    ]
    if report.many.cpu:
        lines.append(f"  during the {report.many.subscribers}-subscriber events: "
                     f"{report.many.cpu.text()}")  # fmt: skip
    if report.memory:
        m = report.memory
        lines.append(
            f"idle memory: {m.opened.live:,} of {m.subscriptions:,} subscriptions live "
            f"({m.opened.sent:,} asked for within the time budget, {m.opened.failed} failed to "
            f"open) after {m.opened.seconds:.0f}s; RSS {m.idle_rss / 2**20:.0f} MiB idle -> "
            f"{m.loaded_rss / 2**20:.0f} MiB (+{m.growth / 2**20:.0f} MiB, "
            f"{m.per_subscription / 1024:.1f} KiB per subscription; "
            f"{m.subscriptions:,} projected: +{m.projected / 2**20:.0f} MiB)"
        )
        if m.idle_cpu:
            lines.append(f"  idle, with them open (5 s): {m.idle_cpu.text()}")
    return "\n".join(lines)


def summary_rows(report: Report) -> list[Row]:
    many, single = report.many, report.single
    p99, upper = many.p(99), many.p(99, True)
    rows = [
        Row(
            f"event to {many.subscribers:,} roomEvents subscribers, p50 / p99",
            f"{many.p(50) * 1000:.0f} / {p99 * 1000:.0f} ms",
            f"{single.p(50) * 1000:.0f} / {single.p(99) * 1000:.0f} ms (1 sub)",
            f"p99 < {P99_TARGET * 1000:.0f} ms (upper bound {upper * 1000:.0f} ms)"
            + (f"; {many.missing} missing" if many.missing else "")
            + (
                f"; {many.opened.failed} failed to open"
                if many.opened and many.opened.failed
                else ""
            ),
            p99 < P99_TARGET and many.missing == 0,
        )
    ]
    if report.memory:
        m = report.memory
        notes = []
        if m.opened.live < m.subscriptions:
            notes.append(f"{m.opened.live:,} live, projected")
        if m.opened.failed:
            notes.append(f"{m.opened.failed} failed to open")
        rows.append(
            Row(
                f"RSS of {m.subscriptions:,} idle subscriptions ({m.connections} connections)",
                f"+{m.projected / 2**20:.0f} MiB",
                f"{m.idle_rss / 2**20:.0f} MiB idle",
                f"{m.per_subscription / 1024:.1f} KiB each; < 1 GiB"
                + (f" ({'; '.join(notes)})" if notes else ""),
                m.projected < MEMORY_TARGET and not m.opened.failed,
            )
        )
    return rows


def main() -> None:
    if "--client" in sys.argv:
        client_entry()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--idle", type=int, default=10_000, help="idle subscriptions (0: skip)")
    args = parser.parse_args()
    report = asyncio.run(measure(args.quick, args.subscribers, args.events, args.idle))
    print_report(detail_table(report), summary_rows(report))


if __name__ == "__main__":
    main()
