"""opencode: `opencode run --format json`, resumed per role with `--session <id>`.

opencode takes the message as arguments (it does not read stdin), so the prompt is passed as one
argument, and `--auto` approves tool permissions that are not explicitly denied.
"""

from __future__ import annotations

from typing import Any

from chatroom.runner.harnesses.turn import Invocation, Turn, tool_activity


class Opencode:
    name = "opencode"
    executable = "opencode"
    resumable = True

    def invocation(self, turn: Turn) -> Invocation:
        argv = [self.executable, "run", "--format", "json", "--auto"]
        if turn.model:
            argv += ["--model", turn.model]
        if turn.resume:
            argv += ["--session", turn.resume]
        text = f"{turn.guidance}\n\n{turn.prompt}" if turn.resume is None else turn.prompt
        return Invocation([*argv, "--", text], None, ("run",))

    def session_of(self, event: dict[str, Any]) -> str | None:
        value = event.get("sessionID") or (event.get("part") or {}).get("sessionID")
        return value if isinstance(value, str) and value else None

    def activity_of(self, event: dict[str, Any]) -> str | None:
        part = event.get("part") or {}
        if part.get("type") != "tool":
            return None
        state = part.get("state") or {}
        return tool_activity(str(part.get("tool", "")), state.get("input") or {})
