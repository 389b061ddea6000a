"""Printing: the per-invocation options (`--json`, `--server`, `--with-content`), and the
command builder (chatroom.agent_commands) set up with what this invocation was given."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from chatroom.agent_commands import TERMINATOR, Commands, q
from chatroom.cli.config import Target, resolve_target

ENV_CLI = "CHATROOM_CLI"
__all__ = ["TERMINATOR", "Commands", "q"]


@dataclass
class Options:
    """Global options; the callback (`chatroom --json cmd`) and each command (`chatroom cmd
    --json`) both set them."""

    json: bool = False
    with_content: bool = False
    server: str | None = None
    _target: Target | None = field(default=None, repr=False)

    def merge(self, json_out: bool, server: str | None, with_content: bool = False) -> Options:
        self.json = self.json or json_out
        self.with_content = self.with_content or with_content
        if server:
            self.server = server
            self._target = None
        return self

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = resolve_target(self.server)
        return self._target


OPTIONS = Options()


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def echo_err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n")


def single_quoted(text: str) -> str:
    """Any text as one POSIX shell word, always quoted (`'it'"'"'s'`)."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def program() -> str:
    """How printed commands start: `chatroom`, or CHATROOM_CLI (e.g. `uv run chatroom`)."""
    return os.environ.get(ENV_CLI, "").strip() or "chatroom"


def commands(timeout: str | None = None) -> Commands:
    """The command builder for this invocation. `--server` is repeated only when it came from
    the flag (from the environment or the login file it applies to the next command as well);
    `timeout` is the agent's `--timeout`, repeated in every wait command."""
    target = OPTIONS.target
    server = target.base_url if target.server_from_flag else None
    return Commands(program=program(), server=server, timeout=timeout)


def server_suffix() -> str:
    server = commands().server
    return f" --server={q(server)}" if server else ""


def wait_cmd(room_id: str, role: str, timeout: str | None = None) -> str:
    return commands(timeout).wait(room_id, role)


def complete_cmd(room_id: str, role: str, target: str, timeout: str | None = None) -> str:
    return commands(timeout).complete(room_id, role, target)


def classify_cmd(room_id: str, role: str, classification: str, timeout: str | None = None) -> str:
    return commands(timeout).classify(room_id, role, classification)


def prompt_cmd(room_id: str, role: str, timeout: str | None = None) -> str:
    return commands(timeout).prompt(room_id, role)


def send_cmd(room_id: str) -> str:
    return commands().send(room_id)
