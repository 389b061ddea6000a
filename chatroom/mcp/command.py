"""The `chatroom mcp` typer command: a thin module, so the CLI registers it without loading the
MCP SDK (that happens only when the command runs)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from chatroom.cli.common import ServerOpt, setup
from chatroom.cli.errors import LocalInputError

CHANNEL_MODES = ("auto", "on", "off")


def mcp(
    room: Annotated[
        str | None,
        typer.Option("--room", help="Default room for every tool (a tool's room_id overrides it)."),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option("--role", help="Default role for every tool (a tool's role overrides it)."),
    ] = None,
    channel: Annotated[
        str,
        typer.Option(
            "--channel",
            help="Push tasks that arrive while no wait_for_task call is open as Claude Code "
            "channel notifications: auto (when the client is Claude Code), on, off. Needs "
            "--room and --role.",
        ),
    ] = "auto",
    server: ServerOpt = None,
) -> None:
    """Serve the chatroom as MCP tools on stdin/stdout (for Claude Code, Codex, any MCP client).
    Register it with `claude mcp add chatroom -- chatroom mcp --room R --role R` (docs/mcp.md)."""
    options = setup(False, server)
    mode = channel.strip().lower()
    if mode not in CHANNEL_MODES:
        raise LocalInputError(f"--channel {channel!r} is not one of auto, on, off.")
    from chatroom.mcp.server import serve

    chosen: Literal["auto", "on", "off"] = (
        "on" if mode == "on" else "off" if mode == "off" else "auto"
    )
    serve(options.target, room, role, chosen)
