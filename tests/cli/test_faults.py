"""The CLI under faults, with no hooks in the product.

(a) `task-complete` in flight when things break. A small TCP proxy (asyncio streams, below)
    sits between the CLI and the server. On the first sendHandoff request it forwards the
    request, waits until the server has committed it (the handoff message is in the database),
    then either kills the server (SIGKILL) and drops the CLI's connection without an answer, or
    only drops the answer. The CLI retries with the same idempotency key; exactly one handoff
    and one new task exist afterwards.
(b) A restarted agent gets its unfinished task back: the builder's wait claims a task and the
    process is SIGKILLed; a new wait prints the same task, marked resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.cli.support import CLI, REPO_ROOT, TERMINATOR, Cli, parse_delivery, until_waiting
from tests.support import dbutil
from tests.support.gql_client import gql_http
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

RETRY_ENV = {"CHATROOM_RETRY_SECONDS": "120"}
COMMIT_TIMEOUT = 15.0
HANDOFF = "Built the parser; tests pass.\nPlease review parse.py."
KEY = re.compile(rb'"idempotencyKey"\s*:\s*"([^"]+)"')
TASKS = "query($c: ID!) { tasks(chatroomId: $c) { id status assignedTo attempt } }"


# --- a proxy that can lose an answer ----------------------------------------------------------


class Exchange:
    """One client connection (the CLI opens one per HTTP call) and what went through it."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.request = bytearray()
        self.held = False  # the answer is withheld (never reaches the client)
        self.answer_arrived = asyncio.Event()


Fault = Callable[[Exchange], Awaitable[None]]


class FaultyProxy:
    """Forwards loopback TCP to `upstream_port`. The first request that carries
    `trigger` is forwarded but its answer is withheld and `fault(exchange)` runs; while
    `forwarding` is False new connections are closed at once (the server looks down)."""

    def __init__(self, upstream_port: int, trigger: bytes, fault: Fault) -> None:
        self.upstream_port = upstream_port
        self.trigger = trigger
        self.fault = fault
        self.armed = False
        self.forwarding = True
        self.triggered = 0  # requests that carried the trigger
        self.keys: list[bytes] = []  # their idempotency keys
        self.refused = 0  # connections closed while not forwarding
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.forwarding:
            self.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self.refused += 1
            writer.close()
            return
        exchange = Exchange(writer)
        self._spawn(self._upstream(exchange, reader, up_writer))
        self._spawn(self._downstream(exchange, up_reader, writer))

    async def _upstream(
        self, exchange: Exchange, reader: asyncio.StreamReader, up: asyncio.StreamWriter
    ) -> None:
        seen = False
        try:
            while chunk := await reader.read(65536):
                if not seen and len(exchange.request) < 1 << 20:
                    exchange.request += chunk
                    if self.trigger in exchange.request:
                        seen = True
                        self._triggered(exchange)
                up.write(chunk)  # the trigger is noted before the request goes on
                await up.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            up.close()

    def _triggered(self, exchange: Exchange) -> None:
        self.triggered += 1
        if key := KEY.search(bytes(exchange.request)):
            self.keys.append(key.group(1))
        if self.armed:
            self.armed = False
            exchange.held = True
            self._spawn(self.fault(exchange))

    async def _downstream(
        self, exchange: Exchange, up: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while chunk := await up.read(65536):
                if exchange.held:
                    exchange.answer_arrived.set()
                    continue  # lost on the way back
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not exchange.held:
                writer.close()


# --- helpers ----------------------------------------------------------------------------------


async def handoffs_in(db_url: str, room: str) -> int:
    return int(
        await dbutil.fetchval(
            db_url,
            "SELECT count(*) FROM messages WHERE chatroom_id = $1::uuid AND type = 'handoff'",
            room,
        )
    )


async def until_committed(db_url: str, room: str) -> None:
    deadline = asyncio.get_running_loop().time() + COMMIT_TIMEOUT
    while await handoffs_in(db_url, room) == 0:
        assert asyncio.get_running_loop().time() < deadline, "the handoff never committed"
        await asyncio.sleep(0.01)


async def db_tasks(db_url: str, room: str) -> list[tuple[str, str | None, str]]:
    rows = await dbutil.fetch(
        db_url,
        "SELECT status, assigned_to, created_by FROM tasks WHERE chatroom_id = $1::uuid"
        " ORDER BY created_at",
        room,
    )
    return [(r["status"], r["assigned_to"], r["created_by"]) for r in rows]


async def builder_holds_a_task(cli: Cli, room: str) -> str:
    """The user asks; the builder's wait claims the task. Returns the task id."""
    sent = await cli.send(room, "Build the parser.")
    got = (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    assert f'task="{sent["task_id"]}" from="user" resumed="no"' in got.out
    task_id = sent["task_id"]
    assert isinstance(task_id, str)
    return task_id


def check_handed_off(out: str, task_id: str, room: str) -> str:
    """task-complete's success output; returns the handoff message id it names."""
    lines = out.splitlines()
    found = re.match(
        rf'Task "{task_id}" handed off to "reviewer" \(message "([0-9a-f-]{{36}})", 2 lines\)\.',
        lines[0],
    )
    assert found, out
    assert lines[-1] == f'chatroom wait-for-message "{room}" --role="builder"'
    return found.group(1)


async def login_through(proxy: FaultyProxy, tmp_path: Path) -> Cli:
    """A guest whose CLI talks to the server only through the proxy."""
    cli = Cli(proxy.base_url, tmp_path / "cfg")
    (await cli.run("auth", "login", "--guest")).ok()
    return cli


async def run_handoff_through(proxy: FaultyProxy, cli: Cli, room: str) -> tuple[str, str]:
    proxy.armed = True
    result = await cli.run(
        "task-complete", room, "--role", "builder", "--next-role", "reviewer",
        "--message-file", "-", stdin=HANDOFF.encode(), env=RETRY_ENV, limit=150,
    )  # fmt: skip
    assert result.rc == 0, str(result)
    assert "Traceback" not in result.err
    return result.out, result.err


async def check_exactly_one_handoff(
    db_url: str, room: str, proxy: FaultyProxy, out: str, task_id: str
) -> None:
    message_id = check_handed_off(out, task_id, room)
    rows = await dbutil.fetch(
        db_url,
        "SELECT id::text, sender_role, target_role, content FROM messages"
        " WHERE chatroom_id = $1::uuid AND type = 'handoff'",
        room,
    )
    assert [tuple(r) for r in rows] == [(message_id, "builder", "reviewer", HANDOFF)]
    assert await db_tasks(db_url, room) == [
        ("completed", "builder", "user"),
        ("pending", "reviewer", "builder"),
    ]
    # The CLI did retry, and every attempt carried the one key of this invocation.
    assert proxy.triggered >= 2, proxy.triggered
    assert len(proxy.keys) == proxy.triggered and len(set(proxy.keys)) == 1, proxy.keys
    assert proxy.keys[0].startswith(b"cli-handoff-")


# --- (a) task-complete in flight --------------------------------------------------------------


async def test_server_killed_after_commit_then_restarted_one_handoff(
    tmp_path: Path, db: PgDatabase, start_server
) -> None:
    # db before start_server: the server stops before its database is dropped.
    server: LiveServer = await start_server(db.url)
    room = ""
    events: list[str] = []

    async def crash(exchange: Exchange) -> None:
        await until_committed(db.url, room)
        events.append("committed")
        proxy.forwarding = False  # from now on the server looks down
        await server.kill()
        events.append("killed")
        exchange.client.close()  # the CLI's request ends without an answer
        await asyncio.sleep(0.5)  # let a retry or two find nobody home
        await server.restart()
        events.append("restarted")
        proxy.forwarding = True

    proxy = await FaultyProxy(server.port, b"sendHandoff", crash).start()
    try:
        cli = await login_through(proxy, tmp_path)
        room = await cli.create_room()
        task_id = await builder_holds_a_task(cli, room)
        out, _ = await run_handoff_through(proxy, cli, room)
        assert events == ["committed", "killed", "restarted"]
        assert proxy.refused >= 1  # a retry did meet the dead server
        await check_exactly_one_handoff(db.url, room, proxy, out, task_id)
        # The server that came back serves the chain on: the reviewer's wait gets the task.
        got = (await cli.run("wait-for-message", room, "--role", "reviewer")).ok()
        assert 'from="builder" resumed="no"' in got.out
    finally:
        await proxy.close()


async def test_answer_lost_without_a_crash_one_handoff(
    tmp_path: Path, db: PgDatabase, start_server
) -> None:
    server: LiveServer = await start_server(db.url)
    room = ""

    async def lose_answer(exchange: Exchange) -> None:
        await until_committed(db.url, room)
        await asyncio.wait_for(exchange.answer_arrived.wait(), COMMIT_TIMEOUT)
        exchange.client.close()  # the answer existed; the CLI never sees it

    proxy = await FaultyProxy(server.port, b"sendHandoff", lose_answer).start()
    try:
        cli = await login_through(proxy, tmp_path)
        room = await cli.create_room()
        task_id = await builder_holds_a_task(cli, room)
        out, _ = await run_handoff_through(proxy, cli, room)
        await check_exactly_one_handoff(db.url, room, proxy, out, task_id)
        assert proxy.refused == 0
    finally:
        await proxy.close()


async def test_claim_whose_answer_is_lost_is_retried_with_its_key(
    tmp_path: Path, db: PgDatabase, start_server
) -> None:
    """The same in wait-for-message: the server kills after committing the claim; the wait
    retries the claim with the key of that delivery and prints the task, claimed once."""
    server: LiveServer = await start_server(db.url)
    task_id = ""

    async def crash(exchange: Exchange) -> None:
        deadline = asyncio.get_running_loop().time() + COMMIT_TIMEOUT
        while (
            await dbutil.fetchval(db.url, "SELECT status FROM tasks WHERE id = $1::uuid", task_id)
            != "in_progress"
        ):
            assert asyncio.get_running_loop().time() < deadline, "the claim never committed"
            await asyncio.sleep(0.01)
        proxy.forwarding = False
        await server.kill()  # the wait's subscription drops as well
        exchange.client.close()
        await asyncio.sleep(0.5)
        await server.restart()
        proxy.forwarding = True

    proxy = await FaultyProxy(server.port, b"claimTask", crash).start()
    try:
        cli = await login_through(proxy, tmp_path)
        room = await cli.create_room()
        await cli.run("prompt", room, "--role", "builder")
        sent = await cli.send(room, "Build the parser.")
        task_id = sent["task_id"]
        proxy.armed = True
        got = await cli.run("wait-for-message", room, "--role", "builder", env=RETRY_ENV)
        assert got.rc == 0, str(got)
        assert got.out_lines[1].startswith(f'task="{task_id}" from="user" resumed="no" '), got.out
        assert proxy.triggered >= 2 and len(set(proxy.keys)) == 1, proxy.keys
        assert proxy.keys[0].startswith(b"cli-claim-")
        row = await dbutil.fetchrow(
            db.url, "SELECT status, assigned_to, attempt FROM tasks WHERE id = $1::uuid", task_id
        )
        assert row is not None and tuple(row) == ("in_progress", "builder", 1)
    finally:
        await proxy.close()


# --- (b) a restarted agent gets its task back -------------------------------------------------


async def start_streaming(cli: Cli, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli.env(),
        cwd=REPO_ROOT,
    )


async def read_until(proc: asyncio.subprocess.Process, marker: str, limit: float = 30.0) -> str:
    assert proc.stdout is not None
    seen: list[str] = []

    async def scan() -> str:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            seen.append(line.decode())
            if marker in seen[-1]:
                return "".join(seen)
        raise AssertionError(f"output ended without {marker!r}:\n{''.join(seen)}")

    return await asyncio.wait_for(scan(), limit)


def sigkill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)


async def resumed_delivery(cli: Cli, room: str, task_id: str) -> str:
    """A new wait for the builder: the same task, marked resumed; returns its output."""
    again = (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    lines = again.out_lines
    assert lines[0].endswith(f'TASK RECEIVED as "builder" in room "{room}"'), again.out
    assert lines[1].startswith(f'task="{task_id}" from="user" resumed="yes" message="')
    assert lines[3].startswith("You already started this task before your process restarted")
    assert parse_delivery(again.out).body == "Build the parser."
    return again.out


async def check_still_held(server: LiveServer, cli: Cli, room: str, task_id: str) -> None:
    async with gql_http(server, cli.token()) as session:
        tasks = (await session.execute(TASKS, c=room))["tasks"]
    assert tasks == [
        {"id": task_id, "status": "IN_PROGRESS", "assignedTo": "builder", "attempt": 1}
    ]


async def test_killed_agent_gets_its_task_back_resumed(
    cli: Cli, live_server: LiveServer, module_db: PgDatabase
) -> None:
    room = await cli.create_room()
    await cli.run("prompt", room, "--role", "builder")  # guidance seen: deliveries only
    agent = await start_streaming(cli, "wait-for-message", room, "--role", "builder")
    await until_waiting(live_server, cli.token(), room, "builder")
    sent = await cli.send(room, "Build the parser.")
    printed = await read_until(agent, "TASK RECEIVED")
    sigkill(agent)  # the agent dies right after it got its task
    await agent.wait()
    assert "TASK RECEIVED" in printed
    await check_still_held(live_server, cli, room, sent["task_id"])

    out = await resumed_delivery(cli, room, sent["task_id"])
    await check_still_held(live_server, cli, room, sent["task_id"])  # not claimed a second time
    # And the resumed task is really the agent's: its handoff goes through.
    to_reviewer = parse_delivery(out).handoffs["new_feature"]
    done = (await cli.bash(f"{to_reviewer}\n{HANDOFF}\n{TERMINATOR}\n")).ok()
    check_handed_off(done.out, sent["task_id"], room)


async def test_agent_killed_as_its_claim_commits_gets_it_back(
    cli: Cli, live_server: LiveServer, module_db: PgDatabase
) -> None:
    """SIGKILL the wait the moment the database shows the claim, printed or not."""
    room = await cli.create_room()
    await cli.run("prompt", room, "--role", "builder")
    agent = await start_streaming(cli, "wait-for-message", room, "--role", "builder")
    await until_waiting(live_server, cli.token(), room, "builder")
    sent = await cli.send(room, "Build the parser.")
    deadline = asyncio.get_running_loop().time() + 30
    while (
        await dbutil.fetchval(
            module_db.url, "SELECT status FROM tasks WHERE id = $1::uuid", sent["task_id"]
        )
        != "in_progress"
    ):
        assert asyncio.get_running_loop().time() < deadline, "never claimed"
        await asyncio.sleep(0.005)
    sigkill(agent)
    await agent.wait()
    await check_still_held(live_server, cli, room, sent["task_id"])
    await resumed_delivery(cli, room, sent["task_id"])
    await check_still_held(live_server, cli, room, sent["task_id"])
