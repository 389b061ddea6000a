"""The command a refusal prints is accepted as it is: stopAgents for a role without a slot
names `chatroom agents start ... --harness H --workdir DIR`; run with the real CLI on a
computer whose daemon runs (H and DIR filled in), it starts exactly that slot."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.agents.common import ROOM_AGENTS, STOP
from tests.cli.support import logged_in
from tests.runner.support import start_daemon
from tests.security.common import call, new_room, ok
from tests.support.server import LiveServer


async def test_the_start_command_a_stop_refusal_names_works(
    live_server: LiveServer, tmp_path: Path
) -> None:
    cli = await logged_in(live_server, tmp_path / "config", "Pat")
    token = cli.token()
    room = (await new_room(live_server, token))["id"]
    refused = await call(
        live_server, token, STOP, input={"chatroomId": room, "roles": ["reviewer"]}
    )
    assert refused.code == "BAD_USER_INPUT", refused
    match = re.search(r"`(chatroom agents start [^`]+)`", refused.message)
    assert match, refused.message
    words = shlex.split(match.group(1))
    assert words[-4:] == ["--harness", "H", "--workdir", "DIR"], words
    workdir = tmp_path / "work"
    workdir.mkdir()

    daemon = await start_daemon(cli, "machine", "start", "--name", "pat box")
    try:
        await daemon.line(r"following this machine's agents")
        (await cli.run(*words[1:-3], "claude", "--workdir", str(workdir))).ok()
        (slot,) = (await ok(live_server, token, ROOM_AGENTS, id=room))["agents"]
        assert (slot["role"], slot["harness"], slot["workdir"]) == (
            "reviewer",
            "claude",
            str(workdir),
        )
        assert slot["machineName"] == "pat box" and slot["desiredState"] == "RUNNING"
        # Now the refused stop goes through.
        stopped = await ok(
            live_server, token, STOP, input={"chatroomId": room, "roles": ["reviewer"]}
        )
        assert stopped[0]["desiredState"] == "STOPPED"
    finally:
        assert await daemon.stop() == 0, daemon.out
