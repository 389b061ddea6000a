"""Claude Code: `claude -p` with stream-json events, resumed per role with `--resume`.

Permissions: `--permission-mode acceptEdits` plus `--allowedTools` for the shell and file tools,
so Bash runs without a prompt. (`--dangerously-skip-permissions` would do the same, but Claude
Code refuses it when run as root, which containers often are.)
"""

from __future__ import annotations

from typing import Any

from chatroom.runner.harnesses.turn import Invocation, Turn, tool_activity

ALLOWED_TOOLS = "Bash,Edit,Write,Read,Glob,Grep,NotebookEdit"


class Claude:
    name = "claude"
    executable = "claude"
    resumable = True

    def invocation(self, turn: Turn) -> Invocation:
        argv = [
            self.executable,
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "acceptEdits",
            f"--allowedTools={ALLOWED_TOOLS}",
            "--append-system-prompt",
            turn.guidance,
        ]
        if turn.model:
            argv += ["--model", turn.model]
        if turn.resume:
            argv += ["--resume", turn.resume]
        elif turn.new_session:
            argv += ["--session-id", turn.new_session]
        # The prompt goes on stdin: no argument-length limit, nothing in `ps`.
        return Invocation(argv, turn.prompt.encode())

    def session_of(self, event: dict[str, Any]) -> str | None:
        # Only the init event: a failed `--resume` still echoes the id in its error result.
        if (event.get("type"), event.get("subtype")) != ("system", "init"):
            return None
        value = event.get("session_id")
        return value if isinstance(value, str) and value else None

    def activity_of(self, event: dict[str, Any]) -> str | None:
        if event.get("type") != "assistant":
            return None
        content = (event.get("message") or {}).get("content") or []
        lines = [
            tool_activity(str(block.get("name", "")), block.get("input") or {})
            for block in content
            if isinstance(block, dict) and block.get("type") == "tool_use"
        ]
        return lines[-1] if lines else None
