"""OpenAI Codex: `codex exec --json`, resumed per role with `codex exec resume <id>`.

The prompt is read from stdin (`-`). Approvals and the sandbox are bypassed so shell commands run
unattended: the slot's working directory is the agent's workspace, as with the other harnesses.

`allow_login_shell=false`: Codex 0.171 runs the model's shell commands as `bash -lc` by default,
and a login shell reads /etc/profile, which on Debian-like systems sets PATH afresh. The runner
puts its own `chatroom` first on PATH, so under a login shell the agent's `chatroom task-complete`
was not found (exit 127, seen with tests/runner/test_codex_e2e.py); `bash -c` keeps the PATH.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from chatroom.runner.harnesses.turn import Invocation, Turn, short, tool_activity

COMMON = [
    "--json",
    "--skip-git-repo-check",
    "--dangerously-bypass-approvals-and-sandbox",
    "-c",
    "allow_login_shell=false",
]
# Codex reports a command as the shell line it ran: `/bin/bash -c "<the model's command>"`.
SHELL_WRAPPER = re.compile(r"^\S*/(?:ba|z)?sh -l?c ")


def _command_of(shown: str) -> str:
    """The model's own command inside Codex's shell wrapper (the whole line when there is none)."""
    if not SHELL_WRAPPER.match(shown):
        return shown
    try:
        words = shlex.split(shown)
    except ValueError:
        return shown
    return words[2] if len(words) == 3 else shown


class Codex:
    name = "codex"
    executable = "codex"
    resumable = True

    def invocation(self, turn: Turn) -> Invocation:
        model = ["--model", turn.model] if turn.model else []
        # Codex has no separate system prompt flag for exec: the guidance leads the prompt.
        text = f"{turn.guidance}\n\n{turn.prompt}" if turn.resume is None else turn.prompt
        if turn.resume:
            argv = [self.executable, "exec", "resume", *COMMON, *model, turn.resume, "-"]
            return Invocation(argv, text.encode(), ("exec", "resume"))
        argv = [self.executable, "exec", *COMMON, *model, "-"]
        return Invocation(argv, text.encode(), ("exec",))

    def session_of(self, event: dict[str, Any]) -> str | None:
        if event.get("type") == "thread.started":
            value = event.get("thread_id")
            return value if isinstance(value, str) and value else None
        return None

    def activity_of(self, event: dict[str, Any]) -> str | None:
        if event.get("type") != "item.started":
            return None
        item = event.get("item") or {}
        kind = item.get("type")
        if kind == "command_execution":
            return tool_activity("Bash", {"command": _command_of(str(item.get("command", "")))})
        if kind == "file_change":
            changes = item.get("changes") or [{}]
            return tool_activity("Edit", {"path": changes[0].get("path", "")})
        if kind in ("mcp_tool_call", "web_search"):
            return short(f"{kind}: {item.get('tool') or item.get('query') or ''}")
        return None
