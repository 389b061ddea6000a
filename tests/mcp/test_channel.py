"""The Claude Code channel: `chatroom mcp` declares `claude/channel` and pushes each task that
arrives while no wait_for_task call is open as a `notifications/claude/channel` notification,
received here by the SDK's own client; each task once, through a server restart too."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cli.support import Cli, logged_in, messages, until_waiting
from tests.mcp.support import call, mcp_process, mcp_session, waiting_call
from tests.mcp.test_tools import TRICKY
from tests.support import dbutil
from tests.support.gql_client import gql_http
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

TASK_ROW = "SELECT status, assigned_to, attempt FROM tasks WHERE id = $1::uuid"
SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { task { id } } }"
INTERRUPT = "mutation($c: ID!) { interruptChatroom(chatroomId: $c) { id } }"
SEEN = "query($id: ID!) { chatroom(id: $id) { participants { role lastSeenAt } } }"


async def last_seen(server: LiveServer, token: str, room: str, role: str) -> str | None:
    async with gql_http(server, token) as session:
        data = await session.execute(SEEN, id=room)
    seen = {p["role"]: p["lastSeenAt"] for p in data["chatroom"]["participants"]}
    return seen.get(role)


async def until_seen_after(
    server: LiveServer, token: str, room: str, role: str, before: str | None
) -> None:
    """Poll until the role's waiter registered again (registering stamps lastSeenAt)."""
    deadline = asyncio.get_running_loop().time() + 30
    while await last_seen(server, token, room, role) == before:
        assert asyncio.get_running_loop().time() < deadline, "the waiter never came back"
        await asyncio.sleep(0.05)


async def send(server: LiveServer, token: str, room: str, text: str) -> dict[str, str]:
    """A user message through the API, byte for byte (the CLI trims a heredoc's last newline)."""
    async with gql_http(server, token) as session:
        data = await session.execute(SEND, i={"chatroomId": room, "content": text})
    return {"task_id": data["sendMessage"]["task"]["id"]}


async def test_the_capability_is_declared(cli: Cli) -> None:
    async with mcp_session(cli) as session:
        capabilities = session.initialize_result.capabilities  # type: ignore[union-attr]
        assert capabilities.experimental == {"claude/channel": {}}
    async with mcp_session(cli, "--channel", "off") as session:
        capabilities = session.initialize_result.capabilities  # type: ignore[union-attr]
        assert not capabilities.experimental
        assert (await call(session, "backlog_list", room_id=await cli.create_room()))["items"] == []


async def test_tasks_are_pushed_to_claude_code_once(
    tmp_path: Path, db: PgDatabase, start_server
) -> None:
    server: LiveServer = await start_server(db.url)
    cli = await logged_in(server, tmp_path / "cfg")
    token = cli.token()
    room = await cli.create_room()
    async with mcp_process(
        cli, "--room", room, "--role", "builder", client_name="claude-code"
    ) as claude:
        builder = claude.client
        # The session's first tool call starts the push side (connecting alone does not).
        await call(builder, "room_status")
        # No tool call open: the desk claims the task and pushes it.
        first = await send(server, token, room, TRICKY)
        push = await claude.push()
        assert push.content == TRICKY
        assert push.meta["event"] == "task" and push.meta["task_id"] == first["task_id"]
        assert push.meta["from_role"] == "user" and push.meta["resumed"] == "false"
        assert "classify" in push.meta["next"]
        assert await dbutil.fetchrow(db.url, TASK_ROW, first["task_id"]) == (
            "in_progress",
            "builder",
            1,
        )

        # The server restarts: the desk's subscription comes back and the server delivers the
        # held task again (resumed). The agent has it already: no second push.
        before = await last_seen(server, token, room, "builder")
        await server.restart()
        await until_seen_after(server, token, room, "builder", before)
        # A wait_for_task call hands back the task the agent holds (it may have missed the push).
        again = await call(builder, "wait_for_task", timeout_seconds=30)
        assert (again["task_id"], again["resumed"], again["body"]) == (
            first["task_id"],
            True,
            TRICKY,
        )
        await call(builder, "classify", classification="question")
        await call(builder, "hand_off", message="Answered.", target_role="user")

        # A call is open: the next task goes to it, not to the channel.
        waiting = await waiting_call(builder, timeout_seconds=60)
        second = await cli.send(room, "Second request.")
        got = await asyncio.wait_for(waiting, 60)
        assert (got["task_id"], got["resumed"], got["body"]) == (
            second["task_id"],
            False,
            "Second request.",
        )
        await call(builder, "classify", classification="question")
        await call(builder, "hand_off", message="Answered again.", target_role="user")

        # No call open again: pushed. The pushes, in order, are one per task pushed.
        third = await cli.send(room, "Third request.")
        push = await claude.push()
        assert (push.meta["task_id"], push.content) == (third["task_id"], "Third request.")
        assert claude.pushes.empty()


async def test_a_generic_client_gets_no_push(cli: Cli, live_server: LiveServer) -> None:
    """Not Claude Code (and no --channel on): nothing is claimed behind the agent's back."""
    room = await cli.create_room()
    async with mcp_process(cli, "--room", room, "--role", "builder") as other:
        await call(other.client, "room_status")  # initialized and serving
        sent = await cli.send(room, "Nobody claims this yet.")
        # The request is still pending for whoever waits: a CLI waiter takes it.
        got = (await cli.run("wait-for-message", room, "--role", "builder", "--json")).ok().json()
        # Claimed by that wait, not taken over from a claim the MCP server made.
        assert (got["task"]["id"], got["task"]["resumed"]) == (sent["task_id"], False)
        assert other.pushes.empty()


async def test_connecting_alone_does_not_take_the_role(cli: Cli, live_server: LiveServer) -> None:
    """What a health check (`claude mcp list`) does, connect and list the tools, leaves the
    role's waiter alone: a CLI waiter keeps it and gets the task."""
    room = await cli.create_room()
    waiting = await cli.start("wait-for-message", room, "--role", "builder", "--json")
    await until_waiting(live_server, cli.token(), room, "builder")
    async with mcp_process(
        cli, "--room", room, "--role", "builder", client_name="claude-code"
    ) as claude:
        assert (await claude.client.list_tools()).tools
        sent = await cli.send(room, "For the CLI waiter.")
        got = (await waiting.finish()).ok().json()
        assert (got["event"], got["task"]["id"]) == ("task", sent["task_id"])
        assert claude.pushes.empty()


async def test_an_interrupt_and_a_takeover_are_pushed(cli: Cli, live_server: LiveServer) -> None:
    token = cli.token()
    room = await cli.create_room()
    async with mcp_process(
        cli, "--room", room, "--role", "builder", client_name="claude-code"
    ) as claude:
        await call(claude.client, "room_status")  # the session is at work: the desk holds the role
        first = await send(live_server, token, room, "Build it.")
        push = await claude.push()
        assert push.meta["task_id"] == first["task_id"]
        async with gql_http(live_server, token) as api:
            await api.execute(INTERRUPT, c=room)
        push = await claude.push()
        assert push.meta["event"] == "interrupt", push
        assert "stop what you are doing" in push.meta["next"]
        feed = await messages(live_server, token, room)
        assert push.content == next(m["content"] for m in feed if m["type"] == "INTERRUPT")
        # The interrupted task went back to pending: the desk takes it again, a new claim.
        push = await claude.push()
        assert (push.meta["event"], push.meta["task_id"]) == ("task", first["task_id"])
        # A newer waiter for the role (the CLI's) takes it over: pushed, and the desk stops.
        taking = await cli.start("wait-for-message", room, "--role", "builder", "--json")
        push = await claude.push()
        assert push.meta["event"] == "superseded"
        assert "Do not call wait_for_task again" in push.content
        got = (await taking.finish()).ok().json()
        assert (got["task"]["id"], got["task"]["resumed"]) == (first["task_id"], True)
        assert claude.pushes.empty()


async def test_after_a_cancelled_call_the_task_is_pushed_and_returned_next(
    cli: Cli, live_server: LiveServer
) -> None:
    token = cli.token()
    room = await cli.create_room()
    async with mcp_process(
        cli, "--room", room, "--role", "builder", client_name="claude-code"
    ) as claude:
        pending = await waiting_call(claude.client, timeout_seconds=120)
        pending.cancel()  # notifications/cancelled: the call is gone, the desk stays
        await asyncio.gather(pending, return_exceptions=True)
        sent = await send(live_server, token, room, "After the cancel.")
        push = await claude.push()
        assert (push.meta["task_id"], push.content) == (sent["task_id"], "After the cancel.")
        got = await call(claude.client, "wait_for_task", timeout_seconds=30)
        assert (got["task_id"], got["resumed"]) == (sent["task_id"], True)
        assert claude.pushes.empty()
