"""Handoff and claim throughput through the whole GraphQL HTTP stack, against the minimal
transactions for the same steps sent straight to PostgreSQL with asyncpg (bench/minimal.py).

    .venv/bin/python -m bench.throughput [--quick] [--pairs 1,10,50] [--seconds 8]

Each agent pair has its own room and its own token, and loops with no think time:
user message -> builder claims -> builder hands off to reviewer -> reviewer claims ->
reviewer hands off to the user. Every step is one mutation: one HTTP request on the pair's own
keep-alive connection (httpx), to a real uvicorn running the app with the rate limit off.

The baseline (bench/minimal.py) is each step as the fewest statements that do its job: one to
authenticate and lock the room, one CTE for every write, event and notification. It uses as
many connections as the app's pool may open (20), so both sides get the same database
concurrency; what is left between the two is the app's own cost (HTTP, GraphQL, SQL it sends
beyond the floor).

In the same run, on the same server: the `{ __typename }` floor (the same pairs sending an
authenticated request that touches nothing) and its server CPU per request, against which the
server CPU per mutation is judged; and statements per mutation as the server sends them,
authentication included, counted by a second short-lived server started with
CHATROOM_STATEMENT_LOG (chatroom/db/session.py), one line per statement.

Ops/s counts the steps completed inside the measuring window (after a warm-up); latencies
are per step, from sending the request to having the parsed answer.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    STEP_KINDS,
    STEP_NAMES,
    Client,
    CpuMeter,
    CpuShares,
    Row,
    Server,
    bench_database,
    database_description,
    database_name,
    format_table,
    handoff_cycle,
    new_owner,
    new_room,
    percentile,
    print_report,
    raise_nofile,
)
from bench.minimal import STATEMENTS_PER_STEP, Connections, MinimalPair, Record, Stop

KINDS = ("message", "claim", "handoff")
APP_POOL = 20  # chatroom/schema/app.py: create_engine(pool_size=10, max_overflow=10)
HANDOFF_SHARE_TARGET = 0.50
HANDOFF_P99_TARGET = 0.100
CPU_RATIO_TARGET = 2.5  # server CPU per mutation over per `{ __typename }` request
STATEMENTS_TARGET = 5
TYPENAME = "{ __typename }"

# --- the pair through GraphQL -------------------------------------------------------------------


class GraphQLPair:
    def __init__(self, url: str, token: str, room_id: str) -> None:
        self.client = Client(url, token)
        self.room_id = room_id
        self.n = 0

    async def cycle(self, record: Record, stop_at: float) -> None:
        self.n += 1

        def before_step() -> None:
            if time.perf_counter() >= stop_at:
                raise Stop

        def step_done(i: int, started: float, ended: float) -> None:
            record(STEP_KINDS[i], started, ended)

        await handoff_cycle(self.client, self.room_id, self.n, step_done, before_step)

    async def aclose(self) -> None:
        await self.client.aclose()


class TypenamePair:
    """The request floor: an authenticated `{ __typename }` on the pair's connection."""

    def __init__(self, url: str, token: str) -> None:
        self.client = Client(url, token)

    async def cycle(self, record: Record, stop_at: float) -> None:
        if time.perf_counter() >= stop_at:
            raise Stop
        started = time.perf_counter()
        await self.client.execute(TYPENAME)
        record("typename", started, time.perf_counter())

    async def aclose(self) -> None:
        await self.client.aclose()


# --- driving and measuring ----------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    pairs: int
    seconds: float
    ops: dict[str, float]  # ops/s by kind
    p50: dict[str, float]
    p99: dict[str, float]
    cpu: CpuShares | None = None

    @property
    def total_ops(self) -> float:
        return sum(self.ops.values()) * self.seconds

    @property
    def server_ms_per_op(self) -> float:
        if self.cpu is None or not self.total_ops:
            return 0.0
        return 1000 * self.seconds * self.cpu.server / self.total_ops

    def cpu_text(self) -> str:
        if self.cpu is None or not self.total_ops:
            return ""
        per_op = 1000 * self.seconds / self.total_ops
        return (
            f"{self.cpu.text()}; per mutation: server {self.cpu.server * per_op:.1f} ms, "
            f"PostgreSQL {self.cpu.postgres * per_op:.1f} ms"
        )


async def drive(
    mode: str,
    pairs: Sequence[Any],
    warmup: float,
    seconds: float,
    meter: CpuMeter | None = None,
) -> Result:
    samples: list[tuple[str, float, float]] = []

    def record(kind: str, started: float, ended: float) -> None:
        samples.append((kind, started, ended))

    begin = time.perf_counter()
    measure_from = begin + warmup
    stop_at = measure_from + seconds

    async def loop(pair: Any) -> None:
        try:
            while True:
                await pair.cycle(record, stop_at)
        except Stop:
            pass

    async def cpu_window() -> CpuShares | None:
        if meter is None:
            return None
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        meter.start()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        return meter.stop()

    cpu = asyncio.create_task(cpu_window())
    await asyncio.gather(*(loop(p) for p in pairs))
    window = [s for s in samples if measure_from <= s[1] < stop_at]
    ops, p50, p99 = {}, {}, {}
    for kind in {k for k, _, _ in samples}:
        done = [s for s in samples if s[0] == kind and measure_from <= s[2] <= stop_at]
        ops[kind] = len(done) / seconds
        latencies = [e - s for k, s, e in window if k == kind]
        p50[kind] = percentile(latencies, 50)
        p99[kind] = percentile(latencies, 99)
    return Result(mode, len(pairs), seconds, ops, p50, p99, await cpu)


async def make_rooms(url: str, n: int, label: str) -> list[tuple[str, str]]:
    """n (token, room) pairs: a guest account and a pair room each, made through the API."""

    async def one(i: int) -> tuple[str, str]:
        token = await new_owner(url, f"{label}{i}")
        async with Client(url, token) as client:
            return token, await new_room(client, f"{label}-{i}")

    made: list[tuple[str, str]] = []
    for start in range(0, n, 10):
        made += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 10))))
    return made


async def app_statement_counts(db_url: str) -> dict[str, int]:
    """Statements per step as the server sends them for the HTTP request, authentication
    included: a server of its own with CHATROOM_STATEMENT_LOG, one warm-up cycle, then one
    counted cycle (the log's lines before and after each step)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "statements.log"
        async with Server(db_url, env={"CHATROOM_STATEMENT_LOG": str(log)}) as server:
            ((token, room),) = await make_rooms(server.http_url, 1, "count-")
            pair = GraphQLPair(server.http_url, token, room)
            counts: dict[str, int] = {}
            try:
                await pair.cycle(lambda *_: None, float("inf"))
                before = [_lines(log)]

                def record(_kind: str, _started: float, _ended: float) -> None:
                    now = _lines(log)
                    counts[STEP_NAMES[len(counts)]] = now - before[0]
                    before[0] = now

                await pair.cycle(record, float("inf"))
            finally:
                await pair.aclose()
            return counts


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


@dataclass
class Report:
    results: list[Result]
    app_counts: dict[str, int]
    typename: Result
    workers_result: Result | None = None
    details: str = ""


async def measure(
    quick: bool = False,
    levels: Sequence[int] = (1, 10, 50),
    seconds: float | None = None,
    workers_check: bool = True,
) -> Report:
    raise_nofile()
    seconds = seconds or (3.0 if quick else 6.0)
    warmup = 1.0 if quick else 2.0
    results: list[Result] = []
    async with bench_database("chatroom_bench_tp") as db_url:
        async with Server(db_url) as server:
            http = server.http_url
            rooms = {
                (mode, n): await make_rooms(http, n, f"{mode}{n}-")
                for mode in ("graphql", "direct")
                for n in levels
            }
            floor_n = 10 if 10 in levels else max(levels)
            floor = [TypenamePair(http, t) for t, _ in rooms[("graphql", floor_n)]]
            meter = CpuMeter(server.pid, database_name(db_url))
            try:
                typename = await drive("typename", floor, warmup, seconds, meter)
            finally:
                await asyncio.gather(*(p.aclose() for p in floor))
            for n in levels:
                pairs = [GraphQLPair(http, t, r) for t, r in rooms[("graphql", n)]]
                meter = CpuMeter(server.pid, database_name(db_url))
                try:
                    results.append(await drive("graphql", pairs, warmup, seconds, meter))
                finally:
                    await asyncio.gather(*(p.aclose() for p in pairs))
        app_counts = await app_statement_counts(db_url)
        pool = await Connections.open(db_url, min(max(levels), APP_POOL))
        try:
            for n in levels:
                pool_n = Connections(pool.conns[: min(n, APP_POOL)])
                direct = [MinimalPair(pool_n, t, r) for t, r in rooms[("direct", n)]]
                meter = CpuMeter(None, database_name(db_url))
                results.append(await drive("direct", direct, warmup, seconds, meter))
        finally:
            await pool.close()
        workers_result = None
        if workers_check:
            # Is the single process the limit? The same 50-pair loop against 2 workers.
            n = max(levels)
            async with Server(db_url, workers=2) as server:
                made = await make_rooms(server.http_url, n, "workers-")
                pairs = [GraphQLPair(server.http_url, t, r) for t, r in made]
                meter = CpuMeter(server.pid, database_name(db_url))
                try:
                    workers_result = await drive("graphql", pairs, warmup, seconds, meter)
                finally:
                    await asyncio.gather(*(p.aclose() for p in pairs))
    return Report(results, app_counts, typename, workers_result)


def _find(results: list[Result], mode: str, pairs: int) -> Result:
    return next(r for r in results if r.mode == mode and r.pairs == pairs)


def detail_table(report: Report) -> str:
    rows = []
    levels = sorted({r.pairs for r in report.results})
    for n in levels:
        g, d = _find(report.results, "graphql", n), _find(report.results, "direct", n)
        for kind in KINDS:
            rows.append(
                (
                    f"{n} pair(s)  {kind}",
                    f"{g.ops[kind]:.0f}",
                    f"{d.ops[kind]:.0f}",
                    f"{g.ops[kind] / d.ops[kind]:.2f}" if d.ops[kind] else "-",
                    f"{g.p50[kind] * 1000:.1f}",
                    f"{g.p99[kind] * 1000:.1f}",
                    f"{d.p50[kind] * 1000:.1f}",
                    f"{d.p99[kind] * 1000:.1f}",
                )
            )
    if report.workers_result is not None:
        w = report.workers_result
        for kind in KINDS:
            rows.append(
                (
                    f"{w.pairs} pairs, 2 workers  {kind}",
                    f"{w.ops[kind]:.0f}",
                    "",
                    "",
                    f"{w.p50[kind] * 1000:.1f}",
                    f"{w.p99[kind] * 1000:.1f}",
                    "",
                    "",
                )
            )
    headers = (
        "concurrency / step",
        "gql ops/s",
        "direct ops/s",
        "ratio",
        "gql p50 ms",
        "gql p99 ms",
        "direct p50",
        "direct p99",
    )
    counts = ", ".join(
        f"{name} {report.app_counts.get(name, '?')}/{STATEMENTS_PER_STEP}" for name in STEP_NAMES
    )
    cpu_lines = [
        f"  {r.mode} {r.pairs} pair(s){' (2 workers)' if r is report.workers_result else ''}: "
        f"{r.cpu_text()}"
        for r in [report.typename, *report.results, *filter(None, [report.workers_result])]
    ]
    return (
        f"throughput: {database_description()}; statements per step app/minimal "
        f"(authentication included, BEGIN/COMMIT not): {counts}\n"
        + format_table(headers, rows)
        + "\n"
        + "\n".join(cpu_lines)
    )


def summary_rows(report: Report) -> list[Row]:
    rows = []
    levels = sorted({r.pairs for r in report.results})
    for n in levels:
        g, d = _find(report.results, "graphql", n), _find(report.results, "direct", n)
        for kind in ("handoff", "claim"):
            ratio = g.ops[kind] / d.ops[kind] if d.ops[kind] else 0.0
            target = kind == "handoff"
            rows.append(
                Row(
                    f"{kind} throughput, {n} pair{'s' if n > 1 else ''} (GraphQL vs asyncpg)",
                    f"{g.ops[kind]:.0f}/s",
                    f"{d.ops[kind]:.0f}/s",
                    f"{ratio:.2f}" + (f" (>= {HANDOFF_SHARE_TARGET:.2f})" if target else ""),
                    ratio >= HANDOFF_SHARE_TARGET if target else None,
                )
            )
    top = max(levels)
    g, d = _find(report.results, "graphql", top), _find(report.results, "direct", top)
    for kind in ("handoff", "claim"):
        target = kind == "handoff"
        rows.append(
            Row(
                f"{kind} p50 / p99, {top} pairs",
                f"{g.p50[kind] * 1000:.1f} / {g.p99[kind] * 1000:.1f} ms",
                f"{d.p50[kind] * 1000:.1f} / {d.p99[kind] * 1000:.1f} ms",
                f"p99 < {HANDOFF_P99_TARGET * 1000:.0f} ms" if target else "",
                g.p99[kind] < HANDOFF_P99_TARGET if target else None,
            )
        )
    floor = report.typename.server_ms_per_op
    for n in levels:
        per_mutation = _find(report.results, "graphql", n).server_ms_per_op
        ratio = per_mutation / floor if floor else 0.0
        rows.append(
            Row(
                f"server CPU per mutation, {n} pair{'s' if n > 1 else ''} (vs `{{ __typename }}`)",
                f"{per_mutation:.2f} ms",
                f"{floor:.2f} ms ({report.typename.pairs} pairs)",
                f"{ratio:.2f}x (<= {CPU_RATIO_TARGET}x)",
                ratio <= CPU_RATIO_TARGET if floor else None,
            )
        )
    most = max(report.app_counts.values(), default=0)
    rows.append(
        Row(
            "statements per mutation, authentication included (most of the 5 steps)",
            str(most),
            f"{STATEMENTS_PER_STEP} (minimal)",
            f"<= {STATEMENTS_TARGET}",
            most <= STATEMENTS_TARGET if report.app_counts else None,
        )
    )
    if report.workers_result is not None:
        w = report.workers_result
        rows.append(
            Row(
                f"handoff, {w.pairs} pairs, uvicorn --workers 2 (ops/s, p99)",
                f"{w.ops['handoff']:.0f}/s, {w.p99['handoff'] * 1000:.1f} ms",
                f"{g.ops['handoff']:.0f}/s, {g.p99['handoff'] * 1000:.1f} ms (1 proc)",
                f"{w.ops['handoff'] / g.ops['handoff']:.2f}x" if g.ops["handoff"] else "",
                None,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--pairs", default="1,10,50", help="concurrency levels")
    parser.add_argument("--seconds", type=float, default=None, help="measuring window per run")
    parser.add_argument("--no-workers", action="store_true", help="skip the 2-worker run")
    args = parser.parse_args()
    levels = [int(x) for x in args.pairs.split(",")]
    report = asyncio.run(
        measure(args.quick, levels, args.seconds, workers_check=not args.no_workers)
    )
    print_report(detail_table(report), summary_rows(report))


if __name__ == "__main__":
    main()
