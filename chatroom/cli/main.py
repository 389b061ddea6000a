"""The `chatroom` command line: a Typer app; each command lives in its own module.

This package imports nothing from chatroom.schema, chatroom.resolvers or chatroom.db at import time
(start-up speed and layering, enforced by tests/test_layers.py); gql, httpx and websockets are
imported only by the commands that talk to the server.

Every failure ends in one line on stderr with the fix, and a documented exit code (docs/cli.md);
never a traceback (set CHATROOM_DEBUG=1 to see one).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from chatroom.cli import startup_shims

startup_shims.install()

import typer  # noqa: E402 - after the start-up patches

from chatroom.cli.commands import auth, backlog, rooms, watch, work  # noqa: E402
from chatroom.cli.common import JsonOpt, ServerOpt, WithContentOpt, setup  # noqa: E402
from chatroom.cli.errors import EXIT_REFUSED, CliError, LocalInputError  # noqa: E402
from chatroom.cli.output import OPTIONS, echo_err, emit_json  # noqa: E402
from chatroom.cli.serve import serve  # noqa: E402
from chatroom.mcp.command import mcp  # noqa: E402 - `chatroom mcp`, a thin module
from chatroom.runner.command import agents_app  # noqa: E402 - `chatroom agents`, a thin module
from chatroom.runner.machine_command import machine_app  # noqa: E402 - `chatroom machine`, thin

ENV_DEBUG = "CHATROOM_DEBUG"
EXIT_CTRL_C = 130

app = typer.Typer(
    name="chatroom",
    no_args_is_help=True,
    # Locals in tracebacks could print tokens or DATABASE_URL passwords.
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    # Plain help text: fast (no rich import) and easy for agents to read.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)


@app.callback()
def main(
    json_out: JsonOpt = False,
    server: ServerOpt = None,
    with_content: WithContentOpt = False,
) -> None:
    """Coordinate a team of AI coding agents.

    An agent's loop is two commands: `chatroom wait-for-message <room> --role=R` (blocks until a
    task arrives, claims it, prints it), then `chatroom task-complete <room> --role=R
    --next-role=T` with the handoff message on stdin. Exit codes and --json keys: docs/cli.md.
    """
    setup(json_out, server, with_content)


app.command("serve")(serve)
app.add_typer(auth.auth_app)
app.command("create")(rooms.create)
app.command("list")(rooms.list_rooms)
app.command("complete")(rooms.complete)
app.command("send")(rooms.send)
app.command("wait-for-message")(work.wait_for_message)
app.command("task-complete")(work.task_complete)
app.command("task-started")(work.task_started)
app.add_typer(backlog.backlog_app)
app.command("prompt")(rooms.prompt)
app.command("watch")(watch.watch)
app.add_typer(agents_app)
app.add_typer(machine_app)
app.command("mcp")(mcp)


def _wants_json(args: Sequence[str]) -> bool:
    return OPTIONS.json or "--json" in args


def _report(exc: CliError, args: Sequence[str]) -> int:
    line = f"chatroom: {exc.message}"
    if isinstance(exc.code, str) and exc.code not in ("ERROR", "BAD_LOCAL_INPUT"):
        line = f"chatroom: {exc.code}: {exc.message}"
    echo_err(line)
    for extra in exc.lines:
        echo_err(extra)
    if _wants_json(args):
        emit_json(
            {
                "error": {
                    "code": exc.code,
                    "message": exc.message,
                    "exit_code": exc.exit_code,
                    "valid_targets": exc.details.get("valid_targets"),
                    "retry_cmd": exc.details.get("retry_cmd"),
                }
            }
        )
    return exc.exit_code


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (`chatroom`)."""
    from typer import Abort
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    args = list(sys.argv[1:] if argv is None else argv)
    code: int
    try:
        result = app(args=args, prog_name="chatroom", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except CliError as exc:
        code = _report(exc, args)
    except NoArgsIsHelpError as exc:
        # `chatroom` (or `chatroom auth`) alone: the help, as --help would print it.
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            sys.stdout.write(ctx.get_help() + "\n")
        code = 0
    except ClickException as exc:
        # Usage errors (unknown flag, missing option): one line, plus where to look.
        message = " ".join(exc.format_message().split())
        command = getattr(getattr(exc, "ctx", None), "command_path", None) or "chatroom"
        code = _report(LocalInputError(f"{message} (see `{command} --help`)"), args)
    except (KeyboardInterrupt, Abort):
        echo_err("chatroom: interrupted.")
        code = EXIT_CTRL_C
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing more to say to it.
        _silence_stdout()
        code = 0
    except Exception as exc:
        if os.environ.get(ENV_DEBUG):
            raise
        text = " ".join(str(exc).split())[:300]
        echo_err(
            f"chatroom: unexpected error ({type(exc).__name__}: {text}). This is a bug in the "
            f"CLI; run it again with {ENV_DEBUG}=1 to see the traceback, and report it."
        )
        code = EXIT_REFUSED
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    sys.exit(code)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    run()
