"""The printed heredoc carries any text through a real shell, byte for byte: the agent pastes its
message into the command the delivery printed, bash runs it, and the next role receives exactly
that text."""

from __future__ import annotations

from tests.cli.support import PLACEHOLDER, TERMINATOR, Cli, messages, parse_delivery
from tests.support.server import LiveServer

NASTY = "\n".join(
    [
        '## Result: it\'s "done" (mostly) & <b>tested</b>',
        "Run `make test` or $(make test) or ${HOME} or $HOME; `rm -rf /` is NOT run.",
        "Backslashes: C:\\path\\to\\file and \\n stays \\t literal; single ' and double \".",
        "```bash",
        "cat <<EOF > out.txt",
        "$(date) `whoami` ${USER:-x}",
        "EOF",
        "echo 'EOF' \"EOF\"",
        "```",
        "\tA tab-indented line, and    trailing spaces   ",
        "The terminator is CHATROOM_MESSAGE_END (inline, not on a line of its own).",
        "Unicode: caf\u00e9, \u2014 dash, \U0001f680 rocket, \u4e2d\u6587.",
        "EOF",
        "---MESSAGE--- in the middle is kept",
        "last line; no newline at the end",
    ]
)


async def test_printed_heredoc_round_trips_any_text(cli: Cli, live_server: LiveServer) -> None:
    room = await cli.create_room()
    await cli.run("prompt", room, "--role", "builder")
    await cli.send(room, "Write it up, please.")
    delivery = (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    (await cli.run("task-started", room, "--role", "builder", "--classification", "question")).ok()

    # The agent's edit: swap the target as "Also allowed" says, replace the placeholder line.
    d = parse_delivery(delivery.out)
    lines = d.rest[d.rest.index(d.handoffs["question"]) :]
    command, placeholder, terminator = lines[:3]
    assert terminator == TERMINATOR and placeholder == PLACEHOLDER
    command = command.replace('--next-role="user"', '--next-role="reviewer"')
    script = "\n".join([command, NASTY, terminator, "echo after-the-heredoc"]) + "\n"

    ran = await cli.bash(script)
    assert ran.rc == 0, str(ran)
    assert ran.out_lines[0].startswith('Task "') and 'handed off to "reviewer"' in ran.out_lines[0]
    assert f"{NASTY.count(chr(10)) + 1} lines" in ran.out_lines[0]
    assert ran.out_lines[-2] == f'chatroom wait-for-message "{room}" --role="builder"'
    assert ran.out_lines[-1] == "after-the-heredoc"  # the heredoc ended where it should

    # Byte for byte on the server ...
    handoff = (await messages(live_server, cli.token(), room))[-1]
    assert handoff["type"] == "HANDOFF" and handoff["senderRole"] == "builder"
    assert handoff["content"] == NASTY

    # ... and in the recipient's delivery (as written, never truncated).
    await cli.run("prompt", room, "--role", "reviewer")
    received = (await cli.run("wait-for-message", room, "--role", "reviewer")).ok()
    assert parse_delivery(received.out).body == NASTY
    as_json = await cli.json("wait-for-message", room, "--role", "reviewer", "--with-content")
    assert as_json["message"]["content"] == NASTY


async def test_message_file_and_marker_line(cli: Cli, live_server: LiveServer, tmp_path) -> None:
    room = await cli.create_room()
    await cli.send(room, "Q?")
    (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    path = tmp_path / "handoff.md"
    path.write_bytes(b"---MESSAGE---\r\n\r\n  indented first line\r\nsecond\r\n\r\n\r\n")
    result = await cli.run(
        "task-complete", room, "--role", "builder", "--next-role", "reviewer",
        "--message-file", str(path),
    )  # fmt: skip
    assert result.rc == 0, str(result)
    assert len(result.out_lines) <= 5
    assert "(message " in result.out_lines[0] and "2 lines" in result.out_lines[0]
    handoff = (await messages(live_server, cli.token(), room))[-1]
    # The marker line and the blank lines around the body go; its CRLF line end stays.
    assert handoff["content"] == "  indented first line\r\nsecond"
