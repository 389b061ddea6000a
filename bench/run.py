"""Every benchmark, one summary table.

    .venv/bin/python -m bench.run [--quick] [--only throughput,room_size,...]

Runs bench.throughput, bench.room_size and bench.fanout in this process, on one database
server (DATABASE_URL's, or one embedded PostgreSQL for the whole run; each benchmark gets a
fresh database of its own), then the other benchmarks in bench/ that exist: a module that
exposes `summary_rows_for_run(quick) -> list[Row]` (sync or async) is called, any other is run
as a subprocess and its own table is shown as it printed it. Each benchmark prints its detailed
table as it finishes; the summary comes last: figure, value, baseline (measured in the same
run), ratio / target, and whether the target was met. A missed target says NO; the numbers
are never tuned to pass (see docs/benchmarks.md for what limits each one).

Timings are reported, never asserted: the exit code is 0 whether targets are met or not
(1 only if a benchmark could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

from bench import fanout, room_size, throughput
from bench.common import (
    REPO_ROOT,
    CpuMeter,
    Row,
    database_description,
    database_server,
    machine,
    raise_nofile,
    summary_table,
)

IN_PROCESS = ("throughput", "room_size", "fanout")
# Benchmarks written elsewhere in bench/: the arguments for a full and for a quick run.
OTHERS: dict[str, tuple[list[str], list[str]]] = {
    "wakeup": ([], ["--samples", "50", "--warmup", "5"]),
    "cli": ([], ["--quick"]),
    "hot_paths": ([], ["--runs", "50"]),
    "agent_control": ([], ["--rounds", "10", "--warmup", "2"]),
}
SUBPROCESS_TIMEOUT = 300.0


async def _throughput(quick: bool) -> tuple[str, list[Row]]:
    report = await throughput.measure(quick)
    return throughput.detail_table(report), throughput.summary_rows(report)


async def _room_size(quick: bool) -> tuple[str, list[Row]]:
    report = await room_size.measure(quick)
    return room_size.detail_table(report), room_size.summary_rows(report)


async def _fanout(quick: bool) -> tuple[str, list[Row]]:
    report = await fanout.measure(quick)
    return fanout.detail_table(report), fanout.summary_rows(report)


RUNNERS: dict[str, Callable[[bool], Awaitable[tuple[str, list[Row]]]]] = {
    "throughput": _throughput,
    "room_size": _room_size,
    "fanout": _fanout,
}


def _as_row(item: object) -> Row:
    """A hook's row: `summary_rows_for_run` returns Rows (a tuple or another object would put
    its fields in the wrong columns, or none: say so instead)."""
    if not isinstance(item, Row):
        raise TypeError(f"summary_rows_for_run returned {item!r}, not a bench.common.Row")
    return item


async def _other(name: str, quick: bool) -> tuple[str, list[Row]]:
    module = importlib.import_module(f"bench.{name}")
    hook = getattr(module, "summary_rows_for_run", None)
    if hook is not None:
        result = hook(quick)
        if inspect.isawaitable(result):
            result = await result
        return "", [_as_row(r) for r in result]
    args = OTHERS[name][1 if quick else 0]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"bench.{name}",
        *args,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), SUBPROCESS_TIMEOUT)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        out += f"\n(stopped after {SUBPROCESS_TIMEOUT:.0f}s)\n".encode()
    text = out.decode(errors="replace").rstrip()
    seconds = time.monotonic() - started
    row = Row(
        f"bench.{name} {' '.join(args)}".strip() + " (its table above)",
        f"exit {proc.returncode}",
        "",
        f"{seconds:.0f}s",
        None,
    )
    return f"$ python -m bench.{name} {' '.join(args)}\n{text}", [row]


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


async def run(quick: bool, only: set[str] | None) -> int:
    raise_nofile()
    started = time.monotonic()
    rows: list[Row] = []
    failures = 0
    names = [n for n in (*IN_PROCESS, *OTHERS) if only is None or n in only]
    async with database_server():
        print(f"bench.run{' --quick' if quick else ''}: {machine()}", flush=True)
        for name in names:
            if name not in RUNNERS and not _available(name):
                print(f"\n== {name}: bench/{name}.py not found, skipped", flush=True)
                continue
            print(f"\n== {name}", flush=True)
            section = time.monotonic()
            meter = CpuMeter(None, f"_{os.getpid()}_").start()
            try:
                runner = RUNNERS.get(name)
                detail, got = await (runner(quick) if runner else _other(name, quick))
            except Exception:
                failures += 1
                traceback.print_exc()
                rows.append(Row(f"{name}: FAILED (traceback above)", "", "", "", False))
                continue
            cpu = meter.stop()
            if detail:
                print(detail)
            print(
                f"({name}: {time.monotonic() - section:.0f}s; CPU used by processes outside "
                f"this run: {cpu.other:.2f} of {cpu.cores} cores)",
                flush=True,
            )
            rows += got
        database = database_description()
    elapsed = time.monotonic() - started
    print(f"\n== summary ({database}; {machine()})")
    print(summary_table(rows))
    print(f"\ntotal {elapsed / 60:.1f} min")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs of everything")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    sys.exit(asyncio.run(run(args.quick, only)))


if __name__ == "__main__":
    main()
