"""Printing: the per-invocation options (`--json`, `--server`, `--with-content`), and the exact
commands the CLI tells agents to run. Every id and value in a printed command is quoted, and
flags use the `--flag="value"` form, so a command can be copied as it is (ergonomics §b15)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

from chatroom.cli.config import Target, resolve_target

ENV_CLI = "CHATROOM_CLI"
TERMINATOR = "CHATROOM_MESSAGE_END"


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


def q(value: str) -> str:
    """A double-quoted shell word. Ids and roles never hold `"`, `$`, backslashes or
    backticks; anything else falls back to POSIX single quotes."""
    if any(ch in value for ch in '"$`\\!\n'):
        return shlex.quote(value)
    return f'"{value}"'


def single_quoted(text: str) -> str:
    """Any text as one POSIX shell word, always quoted (`'it'"'"'s'`)."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def program() -> str:
    """How printed commands start: `chatroom`, or CHATROOM_CLI (e.g. `uv run chatroom`)."""
    return os.environ.get(ENV_CLI, "").strip() or "chatroom"


def server_suffix() -> str:
    """`--server` is repeated in printed commands only when it came from the flag: from the
    environment or the login file it applies to the next command as well."""
    target = OPTIONS.target
    return f" --server={q(target.base_url)}" if target.server_from_flag else ""


def wait_cmd(room_id: str, role: str, timeout: str | None = None) -> str:
    extra = f" --timeout={q(timeout)}" if timeout else ""
    return f"{program()} wait-for-message {q(room_id)} --role={q(role)}{extra}{server_suffix()}"


def complete_cmd(room_id: str, role: str, target: str) -> str:
    """The first line of the task-complete heredoc (the body follows on stdin)."""
    return (
        f"{program()} task-complete {q(room_id)} --role={q(role)} --next-role={q(target)}"
        f"{server_suffix()} << '{TERMINATOR}'"
    )


def classify_cmd(room_id: str, role: str, classification: str) -> str:
    return (
        f"{program()} task-started {q(room_id)} --role={q(role)} "
        f"--classification={q(classification)}{server_suffix()}"
    )


def prompt_cmd(room_id: str, role: str) -> str:
    return f"{program()} prompt {q(room_id)} --role={q(role)}{server_suffix()}"


def send_cmd(room_id: str) -> str:
    return f"{program()} send {q(room_id)}{server_suffix()} --message=" + q("...")
