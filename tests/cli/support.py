"""Driving the installed CLI as a subprocess against a live server.

``Cli.run(*args)`` runs ``python -m chatroom.cli.main`` with its own CHATROOM_CONFIG_DIR and
CHATROOM_SERVER (nothing of the caller's login leaks in) and returns a ``Result``; ``Cli.start``
leaves it running (a waiter) and returns a ``Running`` to finish later. Everything is async, so
a test can keep a waiter open while it drives the room from the same event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.gql_client import gql_http
from tests.support.server import LiveServer

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "chatroom.cli.main"]
VENV_BIN = str(Path(sys.executable).parent)
RUN_TIMEOUT = 60.0
TERMINATOR = "CHATROOM_MESSAGE_END"

# Environment the tests must never inherit (a developer's login or server).
SCRUBBED = (
    "CHATROOM_SERVER",
    "CHATROOM_TOKEN",
    "CHATROOM_CLI",
    "CHATROOM_DEBUG",
    "XDG_CONFIG_HOME",
)


@dataclass
class Result:
    args: tuple[str, ...]
    rc: int
    out: str
    err: str

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def json(self) -> dict[str, Any]:
        lines = [line for line in self.out_lines if line.strip()]
        assert len(lines) == 1, f"expected one JSON line on stdout, got:\n{self.out}"
        data = json.loads(lines[0])
        assert isinstance(data, dict), data
        return data

    def ok(self) -> Result:
        assert self.rc == 0, f"chatroom {' '.join(self.args)} -> {self.rc}\n{self.out}\n{self.err}"
        return self

    def __str__(self) -> str:
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@dataclass
class Running:
    args: tuple[str, ...]
    proc: asyncio.subprocess.Process
    _io: asyncio.Task[tuple[bytes, bytes]] = field(repr=False)

    async def finish(self, limit: float = RUN_TIMEOUT) -> Result:
        try:
            out, err = await asyncio.wait_for(asyncio.shield(self._io), limit)
        except TimeoutError:
            self.proc.kill()
            out, err = await self._io
            raise AssertionError(
                f"chatroom {' '.join(self.args)} did not end in {limit} s:\n"
                f"{out.decode(errors='replace')}\n{err.decode(errors='replace')}"
            ) from None
        rc = await self.proc.wait()
        return Result(self.args, rc, out.decode(), err.decode())

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)


class Cli:
    def __init__(
        self,
        server_url: str,
        config_dir: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.server_url = server_url
        self.config_dir = config_dir
        self.extra_env = dict(extra_env or {})

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env.update(
            CHATROOM_SERVER=self.server_url,
            CHATROOM_CONFIG_DIR=str(self.config_dir),
            PATH=os.pathsep.join([VENV_BIN, env.get("PATH", "")]),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        )
        env.update(self.extra_env)
        env.update(extra or {})
        return env

    async def start(
        self,
        *args: str,
        stdin: bytes | int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Running:
        feed = stdin if isinstance(stdin, bytes) else None
        if isinstance(stdin, int):
            stdin_arg: int = stdin
        elif feed is not None:
            stdin_arg = asyncio.subprocess.PIPE
        else:
            stdin_arg = asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            *args,
            stdin=stdin_arg,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(env),
            cwd=REPO_ROOT,
        )
        io = asyncio.ensure_future(proc.communicate(feed))
        return Running(tuple(args), proc, io)

    async def run(
        self,
        *args: str,
        stdin: bytes | int | None = None,
        env: Mapping[str, str] | None = None,
        limit: float = RUN_TIMEOUT,
    ) -> Result:
        return await (await self.start(*args, stdin=stdin, env=env)).finish(limit)

    async def bash(self, script: str, limit: float = RUN_TIMEOUT) -> Result:
        """Run a shell script the way an agent's tool would (`bash -c`)."""
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            script,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(),
            cwd=REPO_ROOT,
        )
        out, err = await asyncio.wait_for(proc.communicate(), limit)
        return Result(("bash", "-c", script), proc.returncode or 0, out.decode(), err.decode())

    async def json(self, *args: str, **kwargs: Any) -> dict[str, Any]:
        return (await self.run(*args, "--json", **kwargs)).ok().json()

    def token(self) -> str:
        data = json.loads((self.config_dir / "login.json").read_text())
        token = data["servers"][data["current"]]["token"]
        assert isinstance(token, str)
        return token

    async def create_room(self, *args: str) -> str:
        room_id = (await self.json("create", *args))["room_id"]
        assert isinstance(room_id, str)
        return room_id

    async def send(self, room_id: str, text: str) -> dict[str, Any]:
        return await self.json("send", room_id, "--message-file", "-", stdin=text.encode())


async def logged_in(server: LiveServer, config_dir: Path, name: str = "Tester") -> Cli:
    cli = Cli(server.base_url, config_dir)
    (await cli.run("auth", "login", "--guest", "--name", name)).ok()
    return cli


async def messages(server: LiveServer, token: str, room_id: str) -> list[dict[str, Any]]:
    """Every message of the room, oldest first, through the API (not the CLI)."""
    query = (
        "query($c: ID!) { messages(chatroomId: $c, first: 100) { nodes { id seq senderRole "
        "targetRole content type } } }"
    )
    async with gql_http(server, token) as session:
        data = await session.execute(query, c=room_id)
    nodes = data["messages"]["nodes"]
    assert isinstance(nodes, list)
    return nodes


IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def normalize(text: str, names: Mapping[str, str]) -> str:
    """Ids replaced by their names (e.g. {room_id: "ROOM"}), other ids by ID, times by TS."""
    for value, name in names.items():
        text = text.replace(value, f"<{name}>")
    return STAMP.sub("<TS>", IDS.sub("<ID>", text))


def section(lines: list[str], start: str, end: str) -> list[str]:
    """The lines strictly between the line starting with `start` and the line `end`."""
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = lines.index(end, first)
    return lines[first + 1 : last]


async def until_waiting(
    server: LiveServer, token: str, room_id: str, role: str, limit: float = 15.0
) -> None:
    """Poll until the role's waiter is registered (the participant is WAITING)."""
    query = "query($id: ID!) { chatroom(id: $id) { participants { role status } } }"
    deadline = asyncio.get_running_loop().time() + limit
    async with gql_http(server, token) as session:
        while True:
            data = await session.execute(query, id=room_id)
            states = {p["role"]: p["status"] for p in data["chatroom"]["participants"]}
            if states.get(role) == "WAITING":
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{role} is {states.get(role)}, never WAITING")
            await asyncio.sleep(0.05)


def file_mode(path: Path) -> int | None:
    """Permission bits, or None when the file does not exist (sync: no event loop needed)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None


# --- reading a delivery the way an agent does -------------------------------------------------

BOUNDARY_INTRO = re.compile(r"^The message, byte for byte, between the two (\S+) lines:$", re.M)
PLACEHOLDER = "<your handoff message: what you did, how you checked it, what is left for them>"


@dataclass
class Delivery:
    """One `wait-for-message` delivery, split into what the agent acts on. `text` is the
    output as printed; lines are split on "\\n" only (a body may hold CR)."""

    text: str
    intro: list[str]  # the role's identity, before the first delivery only
    head: list[str]  # from "TASK RECEIVED" to the line announcing the body
    identity: dict[str, str]  # task, from, resumed, message
    boundary: str
    body: str  # exactly as printed between the boundary lines
    rest: list[str]  # after the closing boundary line
    classify: dict[str, str]  # kind -> the task-started command (its `# ...` comment dropped)
    handoffs: dict[str | None, str]  # kind (None: no choice to make) -> the heredoc's first line
    wait: str
    others: list[str]  # "Also allowed" targets

    @property
    def overhead(self) -> int:
        """Lines printed besides the body (the fixed overhead of a delivery)."""
        return len(self.text.rstrip("\n").split("\n")) - len(self.body.split("\n"))


def parse_delivery(text: str, program: str = "chatroom") -> Delivery:
    found = BOUNDARY_INTRO.search(text)
    assert found, f"no body boundary in:\n{text}"
    line = found.group(1)
    start = found.end() + 1
    assert text[start:].startswith(line + "\n"), text
    body_start = start + len(line) + 1
    body_end = text.index(f"\n{line}\n", body_start - 1)
    body = text[body_start:body_end]
    before = text[: found.end()].split("\n")
    first = next(i for i, s in enumerate(before) if "TASK RECEIVED as" in s)
    rest = text[body_end + len(line) + 2 :].rstrip("\n").split("\n")
    classify: dict[str, str] = {}
    handoffs: dict[str | None, str] = {}
    kinds: list[str | None] = [None]
    wait = ""
    others: list[str] = []
    for i, s in enumerate(rest):
        if s.startswith(f"{program} task-started "):
            command = s.split("  # ", 1)[0]
            classify[re.search(r'--classification="([a-z_]+)"', command).group(1)] = command  # type: ignore[union-attr]
        elif s.startswith("For ") and s.endswith(":"):
            kinds = list(s[4:-1].split(" or "))
        elif s.startswith(f"{program} task-complete "):
            assert s.endswith(f"<< '{TERMINATOR}'"), s
            assert rest[i + 1] == PLACEHOLDER and rest[i + 2] == TERMINATOR, rest[i : i + 3]
            for kind in kinds:
                handoffs[kind] = s
        elif s.startswith(f"{program} wait-for-message "):
            wait = s
        elif s.startswith("Also allowed: "):
            others = re.findall(r'"([^"]+)"', s.split("(swap", 1)[0])
    return Delivery(
        text=text,
        intro=before[:first],
        head=before[first:],
        identity=dict(re.findall(r'(\w+)="([^"]*)"', before[first + 1])),
        boundary=line,
        body=body,
        rest=rest,
        classify=classify,
        handoffs=handoffs,
        wait=wait,
        others=others,
    )


def heredoc(head: str, body: str) -> str:
    """A printed heredoc head, a body, and the terminator at column 0, as one script."""
    assert head.endswith(f"<< '{TERMINATOR}'"), head
    return f"{head}\n{body}\n{TERMINATOR}\n"
