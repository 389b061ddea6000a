"""wait-for-message's expected ends and its quiet reconnection; watch's resumption; agent
tokens from `create --agent-tokens`."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.cli.support import Cli, logged_in, until_waiting
from tests.support.gql_client import gql_http
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

INTERRUPT = "mutation($id: ID!) { interruptChatroom(chatroomId: $id) { id } }"
ROOM_SEQ = "query($id: ID!) { chatroom(id: $id) { lastEventSeq } }"


def calm(result_out: str, event: str) -> list[str]:
    lines = result_out.splitlines()
    assert lines[0].startswith(f"[EVENT: {event}] "), result_out
    return lines


async def test_timeout_and_signal_are_calm(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    timed = (await cli.run("wait-for-message", room, "--role", "reviewer", "--duration", "1")).ok()
    lines = calm(timed.out, "timeout")
    assert "within 1s" in lines[1]
    assert lines[-1] == f'chatroom wait-for-message "{room}" --role="reviewer" --timeout="1"'

    waiter = await cli.start("wait-for-message", room, "--role", "reviewer")
    await until_waiting(live_server, cli.token(), room, "reviewer")
    waiter.signal(signal.SIGINT)
    stopped = (await waiter.finish()).ok()
    lines = calm(stopped.out, "signal")
    assert "(SIGINT)" in lines[1] and "no task was taken" in lines[1]
    assert lines[-1] == f'chatroom wait-for-message "{room}" --role="reviewer"'
    assert "Traceback" not in stopped.err


async def test_superseded_says_not_to_reconnect(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    older = await cli.start("wait-for-message", room, "--role", "builder")
    await until_waiting(live_server, cli.token(), room, "builder")
    newer = await cli.start("wait-for-message", room, "--role", "builder")
    lines = calm((await older.finish()).ok().out, "superseded")
    assert "Do NOT run wait-for-message again from this process" in lines[2]
    assert not any(line.startswith("chatroom ") for line in lines)
    await until_waiting(live_server, cli.token(), room, "builder")
    newer.signal(signal.SIGTERM)
    (await newer.finish()).ok()


async def test_interrupt_ends_the_wait(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    waiter = await cli.start("wait-for-message", room, "--role", "builder")
    await until_waiting(live_server, cli.token(), room, "builder")
    async with gql_http(live_server, cli.token()) as session:
        await session.execute(INTERRUPT, id=room)
    lines = calm((await waiter.finish()).ok().out, "interrupt")
    assert "stop what you are doing" in lines[1]
    assert lines[-1] == f'chatroom wait-for-message "{room}" --role="builder"'


async def test_wait_survives_a_server_restart(tmp_path: Path, db: PgDatabase, start_server) -> None:
    # db before start_server: the server stops before its database is dropped.
    server = await start_server(db.url)
    cli = await logged_in(server, tmp_path / "cfg")
    room = await cli.create_room()
    await cli.run("prompt", room, "--role", "builder")
    waiter = await cli.start("wait-for-message", room, "--role", "builder")
    await until_waiting(server, cli.token(), room, "builder")
    await server.restart()
    await cli.send(room, "Sent after the restart.")
    result = (await waiter.finish()).ok()
    assert "TASK RECEIVED" in result.out_lines[0]
    assert "Sent after the restart." in result.out
    # Quiet: the only stderr line is the one printed before blocking.
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("waiting as builder")


async def test_wait_gives_up_calmly(tmp_path: Path, db: PgDatabase, start_server) -> None:
    server = await start_server(db.url)
    cli = await logged_in(server, tmp_path / "cfg")
    room = await cli.create_room()
    waiter = await cli.start(
        "wait-for-message", room, "--role", "builder", env={"CHATROOM_RETRY_SECONDS": "2"}
    )
    await until_waiting(server, cli.token(), room, "builder")
    await server.kill()
    result = await waiter.finish()
    assert result.rc == 0, str(result)
    lines = calm(result.out, "connection_lost")
    assert lines[-1] == f'chatroom wait-for-message "{room}" --role="builder"'


async def test_watch_resumes_after_a_restart(tmp_path: Path, db: PgDatabase, start_server) -> None:
    server = await start_server(db.url)
    cli = await logged_in(server, tmp_path / "cfg")
    room = await cli.create_room()
    async with gql_http(server, cli.token()) as session:
        head = (await session.execute(ROOM_SEQ, id=room))["chatroom"]["lastEventSeq"]
    watcher = await cli.start("watch", room, "--count", "4", "--after-seq", str(head))
    await cli.send(room, "one")  # MESSAGE_CREATED, TASK_CREATED
    await server.restart()
    await cli.send(room, "two\nand more")  # MESSAGE_CREATED, TASK_CREATED (queued)
    result = (await watcher.finish()).ok()
    lines = result.out_lines
    assert len(lines) == 4, result.out
    seqs = [int(line.split()[0][1:]) for line in lines]
    assert seqs == sorted(set(seqs)), "each event once, in order"
    assert lines[0].endswith(": one"), lines[0]
    assert "two (+1 line)" in lines[2]
    assert "queued" in lines[3]


async def test_agent_tokens_act_as_their_role(cli: Cli) -> None:
    created = await cli.json("create", "--agent-tokens")
    room, tokens = created["room_id"], created["agent_tokens"]
    assert set(tokens) == {"builder", "reviewer"}
    assert created["wait_cmds"]["builder"].startswith(f'CHATROOM_TOKEN="{tokens["builder"]}" ')
    await cli.send(room, "Do it.")
    as_builder = {"CHATROOM_TOKEN": tokens["builder"]}
    got = (
        await cli.run("wait-for-message", room, "--role", "builder", "--json", env=as_builder)
    ).ok()
    assert got.json()["event"] == "task"
    wrong = await cli.run("prompt", room, "--role", "reviewer", env=as_builder)
    assert wrong.rc == 1 and "FORBIDDEN" in wrong.err
