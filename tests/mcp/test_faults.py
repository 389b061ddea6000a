"""hand_off through a crash: the server commits the handoff, is SIGKILLed before its answer
leaves, and comes back on the same database. The tool call retries with its one idempotency
key and hands off exactly once (the CLI's proxy from tests/cli/test_faults.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cli.test_faults import (
    COMMIT_TIMEOUT,
    RETRY_ENV,
    Exchange,
    FaultyProxy,
    db_tasks,
    login_through,
    until_committed,
)
from tests.mcp.support import call, mcp_session
from tests.mcp.test_tools import REVIEW
from tests.support import dbutil
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

HANDOFFS = (
    "SELECT sender_role, target_role, content FROM messages"
    " WHERE chatroom_id = $1::uuid AND type = 'handoff'"
)


async def test_hand_off_through_a_server_crash_hands_off_once(
    tmp_path: Path, db: PgDatabase, start_server
) -> None:
    server: LiveServer = await start_server(db.url)
    room = ""
    events: list[str] = []

    async def crash(exchange: Exchange) -> None:
        await until_committed(db.url, room)
        events.append("committed")
        proxy.forwarding = False  # from now on the server looks down
        await server.kill()
        events.append("killed")
        exchange.client.close()  # the call's request ends without an answer
        refused = proxy.refused
        deadline = asyncio.get_running_loop().time() + COMMIT_TIMEOUT
        while proxy.refused == refused:  # a retry found nobody home
            assert asyncio.get_running_loop().time() < deadline, "hand_off never retried"
            await asyncio.sleep(0.01)
        await server.restart()
        events.append("restarted")
        proxy.forwarding = True

    proxy = await FaultyProxy(server.port, b"sendHandoff", crash).start()
    try:
        cli = await login_through(proxy, tmp_path)
        room = await cli.create_room()
        async with mcp_session(cli, "--room", room, "--role", "builder", env=RETRY_ENV) as builder:
            sent = await cli.send(room, "Build the parser.")
            got = await call(builder, "wait_for_task", timeout_seconds=60)
            assert got["task_id"] == sent["task_id"]
            await call(builder, "classify", classification="new_feature")
            proxy.armed = True
            handed = await call(builder, "hand_off", message=REVIEW, target_role="reviewer")
            assert handed["task_id"] == sent["task_id"] and handed["target"] == "reviewer"
        assert events == ["committed", "killed", "restarted"]
        rows = await dbutil.fetch(db.url, HANDOFFS, room)
        assert [tuple(r) for r in rows] == [("builder", "reviewer", REVIEW)]
        assert await db_tasks(db.url, room) == [
            ("completed", "builder", "user"),
            ("pending", "reviewer", "builder"),
        ]
        # It did retry, and every attempt carried the one key of this call.
        assert proxy.triggered >= 2 and len(set(proxy.keys)) == 1, proxy.keys
        assert proxy.keys[0].startswith(b"mcp-handoff-")
    finally:
        await proxy.close()
