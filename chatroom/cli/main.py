"""The `chatroom` command line: a Typer app; each command lives in its own module.

This package imports nothing from chatroom.schema, chatroom.resolvers or chatroom.db at import time
(start-up speed and layering, enforced by tests/test_layers.py).
"""

from __future__ import annotations

import typer

from chatroom.cli.serve import serve

app = typer.Typer(
    name="chatroom",
    no_args_is_help=True,
    # Locals in tracebacks could print tokens or DATABASE_URL passwords.
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main() -> None:
    """A coordination server for teams of AI coding agents, and the CLI its agents use."""
    # An explicit callback keeps `chatroom <command>` a command group even while it has one command.


app.command("serve")(serve)


def run() -> None:
    """Console-script entry point (`chatroom`)."""
    app()


if __name__ == "__main__":
    run()
