"""The harness adapters, one module each; `make` picks one by name."""

from __future__ import annotations

from chatroom.cli.errors import LocalInputError
from chatroom.runner.harnesses.claude import Claude
from chatroom.runner.harnesses.codex import Codex
from chatroom.runner.harnesses.command import Command
from chatroom.runner.harnesses.opencode import Opencode
from chatroom.runner.harnesses.turn import Harness, Invocation, Turn

NAMES = ("claude", "codex", "opencode", "command")

__all__ = ["NAMES", "Harness", "Invocation", "Turn", "make"]


def make(name: str, *, command: str | None = None) -> Harness:
    """The adapter for `--harness` (`command` needs its template)."""
    key = name.strip().lower()
    if key == "claude":
        return Claude()
    if key == "codex":
        return Codex()
    if key == "opencode":
        return Opencode()
    if key == "command":
        return Command(command or "")
    raise LocalInputError(f"--harness {name!r} is not one of {', '.join(NAMES)}.")
