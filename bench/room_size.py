"""The cost of a handoff cycle in a small room (100 messages and tasks) and in a big one
(100,000), through the whole GraphQL HTTP stack.

    .venv/bin/python -m bench.room_size [--quick] [--cycles 150] [--size 100000]

Both rooms are built in one database with bench.hot_paths' SQL builder (bulk INSERTs of
messages, tasks and their room events, then ANALYZE), then a fresh server is started and one
client (one keep-alive connection) runs the cycle in each room in turn, so both rooms see the
same conditions: user message -> builder claims -> builder hands off to reviewer -> reviewer
claims -> reviewer hands off to the user. The figure is the median (and p95) time of a whole
cycle, big room over small room; the target is a ratio within 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from bench.common import (
    STEP_NAMES,
    Client,
    Row,
    Server,
    bench_database,
    database_description,
    format_table,
    handoff_cycle,
    median,
    percentile,
    print_report,
)

SMALL, BIG = 100, 100_000
RATIO_TARGET = 1.2
STEPS = STEP_NAMES


async def cycle(client: Client, room_id: str, n: int) -> dict[str, float]:
    """One request's life in the room; returns each step's seconds."""
    times: dict[str, float] = {}

    def record(i: int, started: float, ended: float) -> None:
        times[STEP_NAMES[i]] = ended - started

    await handoff_cycle(client, room_id, n, record)
    return times


@dataclass
class Report:
    small: int
    big: int
    cycles: int
    build_seconds: float
    timings: dict[str, list[dict[str, float]]]  # room -> per-cycle step times

    def cycle_times(self, room: str) -> list[float]:
        return [sum(c.values()) for c in self.timings[room]]

    def step_times(self, room: str, step: str) -> list[float]:
        return [c[step] for c in self.timings[room]]


async def measure(quick: bool = False, cycles: int | None = None, size: int = BIG) -> Report:
    from bench.hot_paths import build_rooms, fill_room
    from chatroom.db.session import create_engine

    cycles = cycles or (40 if quick else 150)
    warmup = 10
    async with bench_database("chatroom_bench_rs") as db_url:
        engine = create_engine(db_url, pool_size=2, max_overflow=0)
        try:
            started = time.perf_counter()
            rooms = await build_rooms(engine, size)  # "empty" and "big" (size)
            await fill_room(engine, rooms.empty, SMALL)  # the small room: 100
            build_seconds = time.perf_counter() - started
        finally:
            await engine.dispose()
        # A server started after the build: its connections see the final statistics.
        async with Server(db_url) as server, Client(server.http_url, rooms.token) as client:
            ids = {"small": rooms.empty, "big": rooms.big}
            timings: dict[str, list[dict[str, float]]] = {"small": [], "big": []}
            for i in range(warmup + cycles):
                # Alternate which room goes first, so neither always follows the other.
                order = ("small", "big") if i % 2 == 0 else ("big", "small")
                for which in order:
                    times = await cycle(client, ids[which], i)
                    if i >= warmup:
                        timings[which].append(times)
    return Report(SMALL, size, cycles, build_seconds, timings)


def detail_table(report: Report) -> str:
    rows = []
    for step in (*STEPS, "whole cycle"):
        if step == "whole cycle":
            small, big = report.cycle_times("small"), report.cycle_times("big")
        else:
            small, big = report.step_times("small", step), report.step_times("big", step)
        rows.append(
            (
                step,
                f"{median(small) * 1000:.2f}",
                f"{percentile(small, 95) * 1000:.2f}",
                f"{median(big) * 1000:.2f}",
                f"{percentile(big, 95) * 1000:.2f}",
                f"{median(big) / median(small):.2f}",
            )
        )
    headers = ("step", "small med ms", "small p95", "big med ms", "big p95", "ratio")
    return (
        f"room size: {database_description()}; {report.small:,} vs {report.big:,} messages and "
        f"tasks (built in {report.build_seconds:.1f}s); {report.cycles} cycles per room\n"
        + format_table(headers, rows)
    )


def summary_rows(report: Report) -> list[Row]:
    small, big = report.cycle_times("small"), report.cycle_times("big")
    ratio = median(big) / median(small)
    p95_ratio = percentile(big, 95) / percentile(small, 95)
    return [
        Row(
            f"handoff cycle in a {report.big:,}-message room, median (p95)",
            f"{median(big) * 1000:.1f} ({percentile(big, 95) * 1000:.1f}) ms",
            f"{median(small) * 1000:.1f} ({percentile(small, 95) * 1000:.1f}) ms",
            f"{ratio:.2f}x ({p95_ratio:.2f}x) (<= {RATIO_TARGET}x)",
            ratio <= RATIO_TARGET,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cycles")
    parser.add_argument("--cycles", type=int, default=None, help="timed cycles per room")
    parser.add_argument("--size", type=int, default=BIG, help="messages/tasks in the big room")
    args = parser.parse_args()
    report = asyncio.run(measure(args.quick, args.cycles, args.size))
    print_report(detail_table(report), summary_rows(report))


if __name__ == "__main__":
    main()
