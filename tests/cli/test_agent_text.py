"""Agent text an agent can follow literally (SPEC §9, issue 11), through the real CLI processes.

- Every command a delivery or `task-started` prints is run verbatim through `bash -c` (a body in
  place of the placeholder line) and accepted, for every team (pair, squad, duo, solo, a custom
  one), every role, both origins (the user's request, a handoff) and every classification state
  (unclassified, each kind, a follow_up). Chains are walked by the printed default commands
  only, until they reach the user; the flags the agent passed (`--timeout`, `--server`,
  `CHATROOM_CLI`) must be in every printed command.
- A handoff body full of shell, markup and control characters arrives byte for byte in the
  recipient's delivery and its `--json --with-content` object.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.support import Cli, Delivery, heredoc, messages, parse_delivery
from tests.support.server import LiveServer

PROGRAM = f"{sys.executable} -m chatroom.cli.main"  # CHATROOM_CLI: how this agent runs the CLI
TIMEOUT = "30s"
MAX_OVERHEAD = 40
HANDOFF = 'Did it -> see `x.py` && run $(make check); <b>ok</b> "quoted"\n\tcafé ✓'
TEAMS = {
    "pair": ("--team", "pair"),
    "squad": ("--team", "squad"),
    "duo": ("--team", "duo"),
    "solo": ("--team", "solo"),
    "custom": ("--roles", "lead,coder,reviewer", "--entry-point", "lead"),
}


def target_of(command: str) -> str:
    found = re.search(r'--next-role="([a-z-]+)"', command)
    assert found, command
    return found.group(1)


@dataclass
class Walk:
    """One agent per role, all in one config dir, running only what they were shown."""

    cli: Cli
    server: str
    room: str
    entry: str
    waits: dict[str, str] = field(default_factory=dict)  # role -> the wait command to run next
    received: set[str] = field(default_factory=set)  # roles that got a handoff
    overhead: dict[str, int] = field(default_factory=dict)  # "role origin state" -> lines

    def first_wait(self, role: str) -> str:
        """The one command the agent types itself: every later one is printed for it."""
        return (
            f'{PROGRAM} wait-for-message "{self.room}" --role="{role}" --timeout="{TIMEOUT}" '
            f'--server="{self.server}"'
        )

    def check_flags(self, line: str) -> None:
        assert line.startswith(PROGRAM + " "), line
        assert f' --server="{self.server}"' in line, line
        assert f' --timeout="{TIMEOUT}"' in line, line

    async def deliver(self, role: str, state: str) -> Delivery:
        ran = await self.cli.bash(self.waits.get(role) or self.first_wait(role))
        assert ran.rc == 0 and "TASK RECEIVED" in ran.out, str(ran)
        d = parse_delivery(ran.out, PROGRAM)
        printed = [s for s in d.rest if s.startswith(PROGRAM)]
        assert printed and d.wait in printed
        for line in printed:
            self.check_flags(line)
        prompt = re.search(r"`([^`]+ prompt [^`]+)`", d.rest[-1])
        assert prompt, d.rest[-1]
        self.check_flags(prompt.group(1))
        origin = "request" if d.identity["from"] == "user" else "handoff"
        overhead = d.overhead - len(d.intro)
        assert overhead <= MAX_OVERHEAD, d.text
        key = f"{role} {origin} {state}"
        self.overhead[key] = max(overhead, self.overhead.get(key, 0))
        if origin == "handoff":
            assert d.body == HANDOFF  # byte for byte, here too
            self.received.add(role)
        self.waits[role] = d.wait
        return d

    async def hand(self, role: str, head: str) -> str:
        """Run a printed heredoc head with a body; returns the target."""
        self.check_flags(head)
        ran = await self.cli.bash(heredoc(head, HANDOFF))
        assert ran.rc == 0, str(ran)
        lines = ran.out.rstrip("\n").split("\n")
        target = target_of(head)
        assert len(lines) <= 5 and lines[0].startswith("Task ")
        assert f' handed off to "{target}" ' in lines[0], lines[0]
        self.check_flags(lines[-1])
        assert f'wait-for-message "{self.room}" --role="{role}"' in lines[-1]
        self.waits[role] = lines[-1]
        return target

    async def classify(self, d: Delivery, kind: str) -> str:
        """Run the printed task-started line; returns the handoff head it prints, which must
        be the one the delivery showed for that kind."""
        ran = await self.cli.bash(d.classify[kind])
        assert ran.rc == 0, str(ran)
        lines = ran.out.rstrip("\n").split("\n")
        assert len(lines) <= 6, ran.out
        heads = [s for s in lines if s.startswith(f"{PROGRAM} task-complete ")]
        assert heads == [d.handoffs[kind]], (ran.out, d.handoffs)
        return heads[0]

    async def follow(self, role: str, head: str, state: str) -> None:
        """Hand off with `head`, then let each recipient run its printed default, until the
        chain reaches the user."""
        for _ in range(12):
            target = await self.hand(role, head)
            if target == "user":
                return
            d = await self.deliver(target, state)
            assert d.identity["from"] == role
            assert list(d.handoffs) == [None] and d.classify == {}  # a handoff: no choice
            role, head = target, d.handoffs[None]
        raise AssertionError("the printed defaults never reach the user")

    async def request(self, text: str = "Please do the next thing.") -> Delivery:
        await self.cli.send(self.room, text)
        d = await self.deliver(self.entry, "unclassified")
        assert d.identity["from"] == "user" and d.classify, d.text
        return d


@pytest.mark.parametrize("team", list(TEAMS))
async def test_every_printed_command_is_accepted(
    team: str, live_server: LiveServer, tmp_path: Path
) -> None:
    cli = Cli(live_server.base_url, tmp_path / "config", {"CHATROOM_CLI": PROGRAM})
    (await cli.run("auth", "login", "--guest", "--name", "Agents")).ok()
    created = await cli.json("create", *TEAMS[team], "--server", live_server.base_url)
    room, roles, entry = created["room_id"], created["roles"], created["entry_point"]
    for role, line in created["wait_cmds"].items():
        server = f'--server="{live_server.base_url}"'
        assert line == f'{PROGRAM} wait-for-message "{room}" --role="{role}" {server}'

    walk = Walk(cli, live_server.base_url, room, entry)

    # 1. question, classified with the printed line; task-started's command is run.
    d = await walk.request()
    assert "follow_up" not in d.classify  # there is no earlier request to follow
    prompt = re.search(r"`([^`]+)`", d.rest[-1]).group(1)  # type: ignore[union-attr]
    again = await cli.bash(prompt)  # the recovery line works as printed
    assert again.rc == 0 and again.out.rstrip("\n").split("\n")[-1] == walk.waits[entry], again
    await walk.follow(entry, await walk.classify(d, "question"), "question")

    # 2. new_feature, then 3. a follow_up of it; each time the resumed delivery (now
    # classified) shows the same command task-started printed.
    for kind in ("new_feature", "follow_up"):
        d = await walk.request()
        head = await walk.classify(d, kind)
        resumed = await walk.deliver(entry, kind)
        assert resumed.identity["resumed"] == "yes" and resumed.classify == {}
        assert resumed.handoffs == {None: head}
        await walk.follow(entry, head, kind)

    # 4. Unclassified: each kind's command works without classifying first.
    for kind in ("new_feature", "question"):
        d = await walk.request()
        assert set(d.classify) == {"question", "new_feature", "follow_up"}
        await walk.follow(entry, d.handoffs[kind], "unclassified")

    # 5. Every other role gets a handoff: swap --next-role, as "Also allowed" says.
    for role in roles:
        if role == entry or role in walk.received:
            continue
        d = await walk.request()
        head = await walk.classify(d, "question")
        assert role in d.others, d.text
        swapped = re.sub(r'--next-role="[a-z-]+"', f'--next-role="{role}"', head)
        await walk.follow(entry, swapped, "question")
    assert walk.received >= set(roles) - {entry}, walk.received

    # The whole history is what the printed commands did: every chain ended with the user.
    feed = await messages(live_server, cli.token(), room)
    chains = [m for m in feed if m["type"] == "MESSAGE" and m["senderRole"] == "user"]
    to_user = [m for m in feed if m["type"] == "HANDOFF" and m["targetRole"] == "user"]
    assert len(chains) == len(to_user) >= 5
    for key, lines in sorted(walk.overhead.items()):
        print(f"overhead {team} {key}: {lines}")


# --- bodies, byte for byte ---------------------------------------------------------------------

BODY = "\n".join(
    [
        "Step 1 -> step 2 && make || exit 1; a < b > c & d",
        '<tag attr="v">x</tag> ]]> <![CDATA[ y ]]> &amp; &lt;',
        "'single' \"double\" `backtick` $(whoami) ${HOME} $HOME \\n stays literal",
        "```python",
        "print('fenced')",
        "```",
        "CHATROOM_BODY_0123456789ab",  # looks like the delivery's own delimiter line
        "EOF",
        "a Windows line\r",  # CRLF
        "\ttab-indented\tand a tab",
        "Unicode: café — 🚀 中文",
        "control: \x1b[31mred\x1b[0m bell\x07 end",
        "last line",
    ]
)
# As printed to a terminal: control characters as visible escapes, everything else as sent.
BODY_PRINTED = BODY.replace("\x1b", "\\x1b").replace("\x07", "\\x07")


async def test_a_handoff_body_arrives_byte_for_byte(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    await cli.send(room, "Build it.")
    d = parse_delivery((await cli.run("wait-for-message", room, "--role", "builder")).ok().out)
    await cli.send(room, "Queued one.")
    await cli.send(room, "Queued two.")
    # The agent pastes the body into the printed heredoc (a real shell runs it).
    ran = await cli.bash(heredoc(d.handoffs["new_feature"], BODY))
    assert ran.rc == 0, str(ran)
    stored = (await messages(live_server, cli.token(), room))[-1]
    assert stored["type"] == "HANDOFF" and stored["content"] == BODY

    out = (await cli.run("wait-for-message", room, "--role", "reviewer")).ok().out
    got = parse_delivery(out)
    assert got.body == BODY_PRINTED
    assert got.boundary not in BODY and got.boundary != "CHATROOM_BODY_0123456789ab"
    assert "\x1b" not in out and "\x07" not in out  # nothing reaches the terminal raw
    assert "2 more requests are queued behind this chain." in got.head[2]

    as_json = await cli.json("wait-for-message", room, "--role", "reviewer", "--with-content")
    message = as_json["message"]
    assert message["content"] == BODY
    assert message["chars"] == len(BODY)
    assert message["sha256"] == hashlib.sha256(BODY.encode()).hexdigest()
    assert as_json["queued_behind"] == 2
    assert as_json["next"]["complete_cmd"] == got.handoffs[None]
    assert as_json["next"]["wait_cmd"] == got.wait
