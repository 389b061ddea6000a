"""Options shared by every command (accepted before or after the command name), and small
helpers the commands use."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chatroom.cli.client import SHORT_RETRY_SECONDS, Api
from chatroom.cli.errors import LocalInputError
from chatroom.cli.output import OPTIONS, Options, echo_err

JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON object (its keys are listed in docs/cli.md)."),
]
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="Server URL (default: env CHATROOM_SERVER, the last login, http://127.0.0.1:8787).",
        show_default=False,
    ),
]
WithContentOpt = Annotated[
    bool,
    typer.Option("--with-content", help="With --json: include message bodies."),
]
RoomArg = Annotated[str, typer.Argument(help="The chatroom id.", show_default=False)]
RoleOpt = Annotated[
    str, typer.Option("--role", help="The role you act as (e.g. builder).", show_default=False)
]
MessageOpt = Annotated[
    str | None,
    typer.Option("--message", "-m", help="Short text, given inline.", show_default=False),
]
MessageFileOpt = Annotated[
    str | None,
    typer.Option(
        "--message-file",
        help="Read the text from this file ('-' = stdin).",
        show_default=False,
    ),
]


def setup(json_out: bool, server: str | None, with_content: bool = False) -> Options:
    return OPTIONS.merge(json_out, server, with_content)


def api(retry_default: float = SHORT_RETRY_SECONDS) -> Api:
    client = Api(OPTIONS.target, retry_default=retry_default)
    announced = False

    def on_retry(reason: str, delay: float) -> None:
        # For a person at a terminal only: an agent's output stays one line per error.
        nonlocal announced
        if not announced and sys.stderr.isatty():
            announced = True
            echo_err(f"chatroom: server not answering ({reason}); retrying...")

    client.on_retry = on_retry
    return client


def role_name(value: str) -> str:
    """Roles are lower case on the server; accept `Builder` the way it does."""
    role = value.strip().lower()
    if not role:
        raise LocalInputError("--role is empty: give the role you act as, e.g. --role=builder.")
    return role
