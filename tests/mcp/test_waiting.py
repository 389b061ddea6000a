"""wait_for_task: a cancelled call claims nothing, or its claim comes back on the next call;
one waiter per role holds across MCP servers and `chatroom wait-for-message`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cli.support import Cli, until_waiting
from tests.cli.test_faults import COMMIT_TIMEOUT, Exchange, FaultyProxy, login_through
from tests.mcp.support import call, mcp_session, until_status, waiting_call
from tests.support import dbutil
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

TASK_ROW = "SELECT status, assigned_to, attempt FROM tasks WHERE id = $1::uuid"


async def test_a_cancelled_wait_claims_nothing(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    token = cli.token()
    async with mcp_session(cli, "--room", room, "--role", "builder") as builder:
        pending = await waiting_call(builder, timeout_seconds=120)
        await until_waiting(live_server, token, room, "builder")
        pending.cancel()  # the SDK client sends notifications/cancelled
        await asyncio.gather(pending, return_exceptions=True)
        # The cancelled call's subscription is gone: nobody waits as builder any more.
        await until_status(live_server, token, room, "builder", "IDLE")
        sent = await cli.send(room, "Build the parser.")
        assert await dbutil.fetchrow(live_server.db_url, TASK_ROW, sent["task_id"]) == (
            "pending",
            None,
            0,
        )
        got = await call(builder, "wait_for_task", timeout_seconds=60)
        assert (got["event"], got["task_id"], got["resumed"]) == ("task", sent["task_id"], False)


async def test_a_call_cancelled_after_its_claim_returns_the_task_next_time(
    tmp_path: Path, db: PgDatabase, start_server
) -> None:
    """The claim commits, its answer is lost on the way back (a proxy holds it), and the client
    cancels the call meanwhile: the next call returns that task, resumed, claimed once."""
    server: LiveServer = await start_server(db.url)
    task_id = ""
    committed = asyncio.Event()

    async def hold_answer(exchange: Exchange) -> None:
        deadline = asyncio.get_running_loop().time() + COMMIT_TIMEOUT
        while (await dbutil.fetchrow(db.url, TASK_ROW, task_id) or ("",))[0] != "in_progress":
            assert asyncio.get_running_loop().time() < deadline, "the claim never committed"
            await asyncio.sleep(0.01)
        committed.set()

    proxy = await FaultyProxy(server.port, b"claimTask", hold_answer).start()
    try:
        cli = await login_through(proxy, tmp_path)
        room = await cli.create_room()
        async with mcp_session(cli, "--room", room, "--role", "builder") as builder:
            sent = await cli.send(room, "Build the parser.")
            task_id = sent["task_id"]
            proxy.armed = True
            pending = await waiting_call(builder, timeout_seconds=120)
            await asyncio.wait_for(committed.wait(), COMMIT_TIMEOUT)
            assert not pending.done()  # the claim's answer never came back
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
            got = await call(builder, "wait_for_task", timeout_seconds=60)
            assert (got["event"], got["task_id"], got["resumed"]) == ("task", task_id, True)
            assert got["body"] == "Build the parser."
        assert await dbutil.fetchrow(db.url, TASK_ROW, task_id) == ("in_progress", "builder", 1)
        assert proxy.triggered == 1  # claimed once; the second call only took it back
    finally:
        await proxy.close()


async def test_one_waiter_per_role_across_mcp_and_cli(cli: Cli, live_server: LiveServer) -> None:
    token = cli.token()
    first, second = await cli.create_room(), await cli.create_room()
    async with mcp_session(cli, "--role", "builder") as builder:
        # MCP first, then the CLI: the MCP call ends superseded; the CLI's wait gets the task.
        mcp_wait = await waiting_call(builder, room_id=first, timeout_seconds=120)
        await until_waiting(live_server, token, first, "builder")
        cli_wait = await cli.start("wait-for-message", first, "--role", "builder", "--json")
        ended = await asyncio.wait_for(mcp_wait, 60)
        assert ended["event"] == "superseded"
        assert "Do not call wait_for_task again" in ended["next"]
        sent = await cli.send(first, "For the CLI waiter.")
        got = (await cli_wait.finish()).ok().json()
        assert (got["event"], got["task"]["id"]) == ("task", sent["task_id"])

        # The CLI first, then MCP: the CLI's wait ends superseded (calmly); MCP gets the task.
        cli_wait = await cli.start("wait-for-message", second, "--role", "builder", "--json")
        await until_waiting(live_server, token, second, "builder")
        mcp_wait = await waiting_call(builder, room_id=second, timeout_seconds=120)
        calm = (await cli_wait.finish()).ok().json()
        assert calm["event"] == "superseded"
        sent = await cli.send(second, "For the MCP waiter.")
        got = await asyncio.wait_for(mcp_wait, 60)
        assert (got["event"], got["task_id"], got["body"]) == (
            "task",
            sent["task_id"],
            "For the MCP waiter.",
        )
