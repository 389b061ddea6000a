"""Any program: a command template with `{prompt_file}`; the prompt is also on its stdin.

The template is split like a shell line (shlex) and `{prompt_file}` is replaced in each word, so
a path with spaces stays one argument. There is no session to resume: a nudge runs the program
again with the nudge in front of the whole prompt.
"""

from __future__ import annotations

import shlex
from typing import Any

from chatroom.cli.errors import LocalInputError
from chatroom.runner.harnesses.turn import Invocation, Turn

PLACEHOLDER = "{prompt_file}"


class Command:
    name = "command"
    resumable = False

    def __init__(self, template: str) -> None:
        try:
            words = shlex.split(template)
        except ValueError as exc:
            raise LocalInputError(f"--command {template!r} cannot be split: {exc}.") from None
        if not words:
            raise LocalInputError(
                "--harness=command needs --command, e.g. --command='my-agent {prompt_file}'."
            )
        self.words = words
        self.executable = words[0]

    def invocation(self, turn: Turn) -> Invocation:
        argv = [w.replace(PLACEHOLDER, str(turn.prompt_file)) for w in self.words]
        return Invocation(argv, turn.prompt.encode())

    def session_of(self, event: dict[str, Any]) -> str | None:
        return None

    def activity_of(self, event: dict[str, Any]) -> str | None:
        return None
