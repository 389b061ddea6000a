"""The runner's task prompt routes like the CLI's delivery (issue 11's rule for every client):
for the user's unclassified request it shows the classification first, each kind with the
handoff the server accepts after it, and every command it prints is accepted when run verbatim.

The delivery is a real claim (the CLI's Waiter, in-process, against a live server); the prompt
is the runner's own builder; the commands run through `bash -c` as an agent's shell tool runs
them, with the environment the runner gives its agents (CHATROOM_SERVER, CHATROOM_TOKEN)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from chatroom.agent_commands import TERMINATOR, Commands
from chatroom.cli.client import Api
from chatroom.cli.config import Target
from chatroom.cli.live import Waiter
from chatroom.cli.message_input import PLACEHOLDER
from chatroom.cli.render import Chain, team_of
from chatroom.runner.prompt import nudge, task_prompt
from tests.cli.support import logged_in, messages
from tests.support.server import LiveServer

PROGRAM = f"{sys.executable} -m chatroom.cli.main"
CLASSIFY = re.compile(r'^(?P<cmd>.*task-started.*--classification="(?P<kind>[a-z_]+)".*?)  #', re.M)
HANDOFF = re.compile(r'^(?P<cmd>.*task-complete.*--next-role="(?P<target>[a-z-]+)".*)$', re.M)


async def _bash(command: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@pytest.mark.parametrize(("kind", "target"), [("new_feature", "reviewer"), ("question", "user")])
async def test_an_unclassified_request_is_classified_first_and_every_command_is_accepted(
    live_server: LiveServer, tmp_path: Path, kind: str, target: str
) -> None:
    cli = await logged_in(live_server, tmp_path / "config")
    room = (await cli.run("create", "--team", "pair", "--json")).ok().json()["room_id"]
    (await cli.run("send", room, "--message", "Add a slugify helper -> with tests")).ok()
    api = Api(Target(live_server.base_url, cli.token(), "env", False))
    outcome = await Waiter(api, room, "builder").run()
    assert outcome.event == "task" and outcome.delivery is not None
    facts = await api.acall("DeliveryContext", {"chatroomId": room, "role": "builder"})
    team, chain = team_of(room, facts["chatroom"]), Chain.of(facts)
    commands = Commands(program=PROGRAM)
    prompt = task_prompt(team, "builder", outcome.delivery, chain, commands)

    kinds = [m["kind"] for m in CLASSIFY.finditer(prompt)]
    assert kinds == ["question", "new_feature"], prompt  # no earlier request: no follow_up
    first_handoff = prompt.index("task-complete")
    assert all(m.start() < first_handoff for m in CLASSIFY.finditer(prompt)), prompt
    assert "wait-for-message" not in prompt.replace("`chatroom wait-for-message`", ""), prompt
    # A new_feature is reviewed before the user sees it: its handoff goes to the reviewer.
    assert re.search(r"# something gets built: then hand off to \"reviewer\"", prompt), prompt

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")},
        "CHATROOM_SERVER": live_server.base_url,
        "CHATROOM_TOKEN": cli.token(),
        "CHATROOM_CONFIG_DIR": str(tmp_path / "agent-config"),
    }
    classify = next(m["cmd"] for m in CLASSIFY.finditer(prompt) if m["kind"] == kind)
    rc, out = await _bash(classify, env)
    assert rc == 0, out
    handoff = next(m["cmd"] for m in HANDOFF.finditer(prompt) if m["target"] == target)
    body = f"Done: {kind} -> {target} && checked"
    lines = prompt[prompt.index(handoff) :].splitlines()[:3]
    assert lines[1:] == [PLACEHOLDER, TERMINATOR], lines  # the heredoc as printed
    block = "\n".join([lines[0], body, TERMINATOR])
    rc, out = await _bash(block, env)
    assert rc == 0, out
    sent = [m for m in await messages(live_server, cli.token(), room) if m["content"] == body]
    assert [(m["senderRole"], m["targetRole"]) for m in sent] == [("builder", target)]


async def test_the_nudge_names_the_handoff_that_applies_after_classifying(
    live_server: LiveServer, tmp_path: Path
) -> None:
    cli = await logged_in(live_server, tmp_path / "config")
    room = (await cli.run("create", "--team", "pair", "--json")).ok().json()["room_id"]
    (await cli.run("send", room, "--message", "Build it")).ok()
    api = Api(Target(live_server.base_url, cli.token(), "env", False))
    outcome = await Waiter(api, room, "builder").run()
    assert outcome.delivery is not None
    (
        await cli.run("task-started", room, "--role", "builder", "--classification", "new_feature")
    ).ok()
    facts = await api.acall("DeliveryContext", {"chatroomId": room, "role": "builder"})
    text = nudge(
        team_of(room, facts["chatroom"]),
        "builder",
        outcome.delivery,
        Chain.of(facts),
        Commands(),
        "exit 0",
    )
    assert [m["target"] for m in HANDOFF.finditer(text)] == ["reviewer"], text
    assert "task-started" not in text, text
