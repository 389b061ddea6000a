"""What every harness adapter takes and gives: one `Turn` in, one `Invocation` out.

An adapter only builds argument vectors and reads its CLI's event stream; running the process,
time limits and supervision belong to the slot (chatroom/runner/slot.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Activity lines stay short: they are a glance at what an agent is doing, not a log.
ACTIVITY_WIDTH = 72


@dataclass(frozen=True)
class Turn:
    """One run of a harness on a task."""

    prompt: str  # the task (or the nudge) the agent reads
    prompt_file: Path  # the same text, written to a file for templates and long prompts
    guidance: str  # the role guidance (a system prompt where the CLI has one)
    resume: str | None  # the session to continue, or None for a new one
    new_session: str | None  # a session id to start with, where the CLI lets us choose it
    model: str | None


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    stdin: bytes | None
    # The subcommand the flags belong to (for the --help check), e.g. ("exec", "resume").
    subcommand: tuple[str, ...] = ()


class Harness(Protocol):
    name: str
    executable: str
    # True when a session can be resumed: a nudge then continues the conversation instead of
    # starting the program again with the whole prompt.
    resumable: bool

    def invocation(self, turn: Turn) -> Invocation: ...

    def session_of(self, event: dict[str, Any]) -> str | None: ...

    def activity_of(self, event: dict[str, Any]) -> str | None: ...


def json_event(line: str) -> dict[str, Any] | None:
    """One JSON object per line, as the agent CLIs print their events; None for anything else."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def short(text: str, width: int = ACTIVITY_WIDTH) -> str:
    """The first line of `text`, cut to `width` characters."""
    first = " ".join(str(text).strip().splitlines()[0].split()) if str(text).strip() else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def tool_activity(tool: str, args: dict[str, Any]) -> str:
    """`Bash: pytest -q`, `Edit textutil.py`: one line for one tool call, the same wording for
    every harness."""
    name = tool[:1].upper() + tool[1:]
    if name.lower() in ("bash", "shell", "command_execution"):
        return short(f"Bash: {args.get('command', '')}")
    path = args.get("file_path") or args.get("filePath") or args.get("path")
    if path:
        return short(f"{name} {Path(str(path)).name}")
    pattern = args.get("pattern") or args.get("query") or args.get("url")
    if pattern:
        return short(f"{name}: {pattern}")
    return name
