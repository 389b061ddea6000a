"""The exact `chatroom` commands printed for an agent, built in one place for every client (the
CLI, the server's role guidance, the runner, the MCP server).

Every id and value is quoted and flags use the `--flag="value"` form, so a command can be copied
as it is (ergonomics §b15). `Commands` carries what the agent passed and must see again in every
command printed for it: how it invokes the CLI (`CHATROOM_CLI`, e.g. `uv run chatroom`), the
`--server` flag, and the `--timeout` of its wait. Pure: no environment, no I/O.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

TERMINATOR = "CHATROOM_MESSAGE_END"
CLASSIFICATIONS = ("question", "new_feature", "follow_up")


def q(value: str) -> str:
    """A double-quoted shell word. Ids and roles never hold `"`, `$`, backslashes or
    backticks; anything else falls back to POSIX single quotes."""
    if any(ch in value for ch in '"$`\\!\n'):
        return shlex.quote(value)
    return f'"{value}"'


@dataclass(frozen=True)
class Commands:
    """How the commands printed for one agent start and which of its flags they repeat."""

    program: str = "chatroom"
    server: str | None = None  # repeated as --server: the agent passed the flag
    timeout: str | None = None  # repeated as --timeout: the agent's wait had one

    def _flags(self, *, timeout: bool) -> str:
        out = f" --timeout={q(self.timeout)}" if timeout and self.timeout else ""
        return out + (f" --server={q(self.server)}" if self.server else "")

    def wait(self, room_id: str, role: str) -> str:
        return (
            f"{self.program} wait-for-message {q(room_id)} --role={q(role)}"
            f"{self._flags(timeout=True)}"
        )

    def complete_head(self, room_id: str, role: str, target: str) -> str:
        """task-complete without its body (the retry of a refused handoff adds one)."""
        return (
            f"{self.program} task-complete {q(room_id)} --role={q(role)} --next-role={q(target)}"
            f"{self._flags(timeout=True)}"
        )

    def complete(self, room_id: str, role: str, target: str) -> str:
        """The first line of the task-complete heredoc (the body follows on stdin)."""
        return f"{self.complete_head(room_id, role, target)} << '{TERMINATOR}'"

    def classify(self, room_id: str, role: str, classification: str) -> str:
        return (
            f"{self.program} task-started {q(room_id)} --role={q(role)} "
            f"--classification={q(classification)}{self._flags(timeout=True)}"
        )

    def prompt(self, room_id: str, role: str) -> str:
        return f"{self.program} prompt {q(room_id)} --role={q(role)}{self._flags(timeout=True)}"

    def agents(self, verb: str, room_id: str, *roles: str) -> str:
        """`agents restart` / `stop` for these roles, or every role when none is named (what a
        person runs about the room's agent slots)."""
        only = "".join(f" --role={q(role)}" for role in roles)
        return f"{self.program} agents {verb} {q(room_id)}{only}{self._flags(timeout=False)}"

    def machine_start(self) -> str:
        return f"{self.program} machine start{self._flags(timeout=False)}"

    def send(self, room_id: str) -> str:
        return f"{self.program} send {q(room_id)}{self._flags(timeout=False)} --message=" + q("...")
