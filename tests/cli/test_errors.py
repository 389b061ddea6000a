"""Every failure: one line on stderr that says what to do, the documented exit code, and never a
traceback. A refused handoff adds the valid targets and a corrected command."""

from __future__ import annotations

import os
import pty
import socket
import time
import uuid

import pytest

from tests.cli.support import TERMINATOR, Cli, Result

EXIT_REFUSED, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE = 1, 2, 3, 4


def one_line_error(result: Result, code: int, *needles: str, skip: int = 0) -> str:
    """The error line (after `skip` expected stderr lines), which must be the last one."""
    assert result.rc == code, str(result)
    assert "Traceback" not in result.out + result.err, str(result)
    lines = result.err_lines[skip:]
    assert len(lines) == 1, str(result)
    line = lines[0]
    assert line.startswith("chatroom: "), line
    for needle in needles:
        assert needle in line, line
    return line


async def test_not_logged_in(anon: Cli) -> None:
    result = await anon.run("list")
    one_line_error(result, EXIT_AUTH, "Not logged in", "chatroom auth login")
    assert result.out == ""


async def test_a_refused_token(anon: Cli) -> None:
    result = await anon.run("auth", "status", env={"CHATROOM_TOKEN": "not-a-token"})
    one_line_error(result, EXIT_AUTH, "UNAUTHENTICATED", "CHATROOM_TOKEN")


async def test_unknown_room(cli: Cli) -> None:
    missing = str(uuid.uuid4())
    one_line_error(await cli.run("send", missing, "--message", "hi"), EXIT_REFUSED, "NOT_FOUND")
    result = await cli.run("wait-for-message", missing, "--role", "builder")
    assert result.err_lines[0].startswith(f"waiting as builder in {missing}")
    one_line_error(result, EXIT_REFUSED, "NOT_FOUND", "chatroom list", skip=1)


async def test_role_outside_the_team(cli: Cli) -> None:
    room = await cli.create_room()
    result = await cli.run("wait-for-message", room, "--role", "tester")
    one_line_error(result, EXIT_REFUSED, "BAD_USER_INPUT", "builder, reviewer", skip=1)


async def test_not_the_holder(cli: Cli) -> None:
    room = await cli.create_room()
    await cli.send(room, "Do it.")
    (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    result = await cli.run(
        "task-complete", room, "--role", "reviewer", "--next-role", "user", "--message", "Done."
    )
    assert result.rc == EXIT_REFUSED and "Traceback" not in result.err
    first, *rest = result.err_lines
    assert first.startswith("chatroom: NOT_TASK_HOLDER: ") and first.endswith("Nothing was sent.")
    assert rest[-1] == f'chatroom wait-for-message "{room}" --role="reviewer"'
    assert result.out == ""


async def test_handoff_not_allowed(cli: Cli) -> None:
    room = await cli.create_room()
    await cli.send(room, "Build a feature.")
    (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    (
        await cli.run("task-started", room, "--role", "builder", "--classification", "new_feature")
    ).ok()
    body = b"Built it.\n"
    result = await cli.run(
        "task-complete", room, "--role", "builder", "--next-role", "user", stdin=body
    )
    assert result.rc == EXIT_REFUSED and "Traceback" not in result.err
    assert result.err_lines == [
        result.err_lines[0],
        'Valid targets for "builder": "reviewer", "user".',
        "Run this instead:",
        f'chatroom task-complete "{room}" --role="builder" --next-role="reviewer"'
        f" << '{TERMINATOR}'",
        "Built it.",  # the refused message itself, so the fix runs as printed
        TERMINATOR,
    ]
    assert result.err_lines[0].startswith("chatroom: HANDOFF_NOT_ALLOWED: ")
    assert result.err_lines[0].endswith("Nothing was sent.")
    # The corrected target works, and nothing was sent by the refused call.
    (
        await cli.run(
            "task-complete", room, "--role", "builder", "--next-role", "reviewer", stdin=body
        )
    ).ok()


async def test_unknown_target_lists_the_valid_ones(cli: Cli) -> None:
    room = await cli.create_room()
    await cli.send(room, "Q?")
    (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    result = await cli.run(
        "task-complete", room, "--role", "builder", "--next-role", "tester", "--message", "x"
    )
    assert result.rc == EXIT_REFUSED
    assert result.err_lines[0].startswith("chatroom: BAD_USER_INPUT: targetRole 'tester'")
    assert result.err_lines[1] == 'Valid targets for "builder": "reviewer", "user".'
    assert result.err_lines[-1] == (
        f'chatroom task-complete "{room}" --role="builder" --next-role="reviewer" --message=\'x\''
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("task-complete", str(uuid.UUID(int=1)), "--role", "builder", "--next-role", "user",
         "--message", "x"),
        ("wait-for-message", str(uuid.UUID(int=1)), "--role", "builder"),
    ],
    ids=["list", "task-complete", "wait-for-message"],
)  # fmt: skip
async def test_server_unreachable(cli: Cli, args: tuple[str, ...]) -> None:
    env = {
        "CHATROOM_SERVER": f"http://127.0.0.1:{_closed_port()}",
        "CHATROOM_TOKEN": cli.token(),  # the login file's token belongs to the live server
        "CHATROOM_RETRY_SECONDS": "1",
    }
    started = time.monotonic()
    result = await cli.run(*args, env=env)
    skip = 1 if args[0] == "wait-for-message" else 0
    one_line_error(result, EXIT_UNREACHABLE, "UNREACHABLE", "Cannot reach", skip=skip)
    assert time.monotonic() - started < 20


async def test_empty_message(cli: Cli) -> None:
    room = await cli.create_room()
    args = ("task-complete", room, "--role", "builder", "--next-role", "user")
    for stdin in (b"", b"\n  \n\t\n", b"---MESSAGE---\n\n"):
        one_line_error(await cli.run(*args, stdin=stdin), EXIT_USAGE, "empty", "nothing was sent")
    one_line_error(await cli.run(*args, "--message", "  "), EXIT_USAGE, "empty")


async def test_bad_message_bodies(cli: Cli) -> None:
    room = await cli.create_room()
    args = ("task-complete", room, "--role", "builder", "--next-role", "user")
    inner = f"text\n{TERMINATOR}\nmore".encode()
    one_line_error(await cli.run(*args, stdin=inner), EXIT_USAGE, TERMINATOR, "Nothing was sent")
    one_line_error(await cli.run(*args, stdin=b"caf\xe9\n"), EXIT_USAGE, "not valid UTF-8")
    placeholder = b"<your handoff message: what you did, how you checked it, what is left for them>"
    one_line_error(await cli.run(*args, stdin=placeholder), EXIT_USAGE, "placeholder")
    one_line_error(
        await cli.run(*args, "--message-file", "/nonexistent/x.md"), EXIT_USAGE, "does not exist"
    )


async def test_stdin_is_a_terminal(cli: Cli) -> None:
    room = await cli.create_room()
    master, slave = pty.openpty()
    try:
        started = time.monotonic()
        result = await cli.run(
            "task-complete", room, "--role", "builder", "--next-role", "user", stdin=slave,
            limit=20,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        os.close(slave)
        os.close(master)
    assert result.rc == EXIT_USAGE, str(result)
    assert elapsed < 10
    first, *example = result.err_lines
    assert first.startswith("chatroom: No message: stdin is a terminal.")
    assert example == [
        f'chatroom task-complete "{room}" --role="builder" --next-role="user" << \'{TERMINATOR}\'',
        "<your handoff message>",
        TERMINATOR,
    ]


async def test_usage_errors(cli: Cli) -> None:
    one_line_error(await cli.run("no-such-command"), EXIT_USAGE, "No such command")
    one_line_error(await cli.run("wait-for-message", "x"), EXIT_USAGE, "--role")
    one_line_error(
        await cli.run("wait-for-message", "x", "--role", "b", "--timeout", "soon"),
        EXIT_USAGE,
        "not a duration",
    )
    result = await cli.run("task-started", "x", "--role", "b", "--classification", "bug")
    assert result.rc == EXIT_USAGE and result.err_lines[0].startswith("chatroom: --classification")
    one_line_error(
        await cli.run("create", "--team", "trio"), EXIT_USAGE, "pair, squad, duo or solo"
    )
