"""The hot paths cost the same in a room with 10,000 messages and 10,000 tasks as in an empty one.

Timings are not asserted (see bench/hot_paths.py for them). What is asserted does not depend on
the machine: every statement the hot paths send is planned, with real statistics (ANALYZE), as
an index scan on messages, tasks and room_events, never a sequential scan; and each hot path
sends exactly as many statements in the big room as in the empty one (no per-row loops).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bench.hot_paths import BIG_ROOM_SIZE, Cycle, StatementLog, build_rooms
from tests.support import dbutil
from tests.support.pg import PgDatabase

WATCHED = {"messages", "tasks", "room_events"}
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan"}


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


async def explain(url: str, statement: str, parameters: Any) -> dict[str, Any]:
    """EXPLAIN (no ANALYZE: nothing runs) with the statement's own parameter values, so the
    planner sees what it saw when the hot path ran (a custom plan for these values)."""
    raw = await dbutil.fetchval(url, "EXPLAIN (FORMAT JSON) " + statement, *(parameters or ()))
    [top] = json.loads(raw) if isinstance(raw, str) else raw
    return top["Plan"]


async def test_room_builder_is_consistent(db: PgDatabase, engine: AsyncEngine) -> None:
    """The bulk room looks like one the API built: gapless seqs, counters, links."""
    built = await build_rooms(engine, size=1000)
    room = await dbutil.fetchrow(db.url, "SELECT * FROM chatrooms WHERE id = $1::uuid", built.big)
    assert room is not None
    seqs = await dbutil.fetch(
        db.url, "SELECT seq FROM messages WHERE chatroom_id = $1::uuid ORDER BY seq", built.big
    )
    assert [r["seq"] for r in seqs] == list(range(1, 1001)) and room["last_message_seq"] == 1000
    events = await dbutil.fetch(
        db.url, "SELECT seq FROM room_events WHERE chatroom_id = $1::uuid ORDER BY seq", built.big
    )
    assert [r["seq"] for r in events] == list(range(1, room["last_event_seq"] + 1))
    unlinked = await dbutil.fetchval(
        db.url,
        "SELECT count(*) FROM messages m LEFT JOIN tasks t ON t.id = m.task_id"
        " WHERE m.chatroom_id = $1::uuid AND (t.id IS NULL OR t.source_message_id <> m.id)",
        built.big,
    )
    assert unlinked == 0
    active = await dbutil.fetchval(
        db.url,
        "SELECT count(*) FROM tasks WHERE chatroom_id = $1::uuid"
        " AND status IN ('pending', 'in_progress', 'queued')",
        built.big,
    )
    assert active == 0, "the big room is idle, like the empty one"


async def test_hot_paths_use_indexes_and_constant_statement_counts(
    db: PgDatabase, engine: AsyncEngine
) -> None:
    built = await build_rooms(engine, size=BIG_ROOM_SIZE)
    assert (
        await dbutil.fetchval(
            db.url, "SELECT count(*) FROM messages WHERE chatroom_id = $1::uuid", built.big
        )
        == BIG_ROOM_SIZE
    )
    log = StatementLog(engine)
    captured: dict[str, dict[str, list[tuple[str, Any]]]] = {}
    try:
        for which, room_id in (("empty", built.empty), ("big", built.big)):
            cycle = Cycle(engine, built.token, room_id)
            for name in Cycle.STEPS:  # warm-up: connections, caches; not measured
                await cycle.step(name)
            captured[which] = {}
            for name in Cycle.STEPS:
                with log.capturing() as statements:
                    await cycle.step(name)
                captured[which][name] = list(statements)
    finally:
        log.close()

    counts = {which: {n: len(s) for n, s in steps.items()} for which, steps in captured.items()}
    assert counts["big"] == counts["empty"], counts

    # Real statistics, as a production database would have (autovacuum's ANALYZE).
    await dbutil.execute(db.url, "ANALYZE")
    problems: list[str] = []
    index_scanned: set[str] = set()
    for name, statements in captured["big"].items():
        for statement, parameters in statements:
            plan = await explain(db.url, statement, parameters)
            for node in plan_nodes(plan):
                relation = node.get("Relation Name")
                kind = node["Node Type"]
                if relation not in WATCHED or kind == "ModifyTable":
                    continue
                if kind in INDEX_SCANS:
                    index_scanned.add(relation)
                else:
                    problems.append(f"{name}: {kind} on {relation}\n    {statement}")
    assert not problems, "hot paths scan instead of using an index:\n" + "\n".join(problems)
    # Not vacuous: the hot paths do read both tables, through indexes.
    assert {"messages", "tasks"} <= index_scanned, index_scanned
