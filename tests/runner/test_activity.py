"""Activity lines reach the output at most once a second, and the newest one is never lost."""

from __future__ import annotations

import asyncio
import time

from chatroom.runner.activity import ActivityReporter
from chatroom.runner.harnesses import make


async def test_at_most_one_line_a_second_and_the_newest_wins() -> None:
    sent: list[tuple[float, str]] = []
    second = asyncio.Event()

    def emit(line: str) -> None:
        sent.append((time.monotonic(), line))
        if len(sent) == 2:
            second.set()

    reporter = ActivityReporter(emit, interval=1.0)
    for line in ("Bash: ls", "Read a.py", "Edit textutil.py"):
        reporter.report(line)
    assert [line for _, line in sent] == ["Bash: ls"]
    await asyncio.wait_for(second.wait(), 5)
    assert [line for _, line in sent] == ["Bash: ls", "Edit textutil.py"]
    assert sent[1][0] - sent[0][0] >= 1.0
    reporter.report("Edit textutil.py")  # the same line again is not repeated
    reporter.close()
    assert len(sent) == 2


def test_claude_events_become_short_lines() -> None:
    claude = make("claude")
    bash = {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "text", "text": "Running the tests."},
                {"type": "tool_use", "name": "Bash", "input": {"command": "pytest -q\necho"}},
            ]
        },
    }
    edit = {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "tool_use", "name": "Edit", "input": {"file_path": "/w/src/textutil.py"}}
            ]
        },
    }
    assert claude.activity_of(bash) == "Bash: pytest -q"
    assert claude.activity_of(edit) == "Edit textutil.py"
    assert claude.activity_of({"type": "result", "session_id": "s1"}) is None
    assert claude.session_of({"type": "system", "subtype": "init", "session_id": "s1"}) == "s1"
    long = {
        "type": "assistant",
        "message": {
            "content": [{"type": "tool_use", "name": "Bash", "input": {"command": "x" * 200}}]
        },
    }
    line = claude.activity_of(long)
    assert line is not None and len(line) <= 72


def test_codex_events_become_short_lines() -> None:
    codex = make("codex")
    started = {"type": "item.started", "item": {"type": "command_execution", "command": "ls -la"}}
    assert codex.activity_of(started) == "Bash: ls -la"
    assert codex.session_of({"type": "thread.started", "thread_id": "t-1"}) == "t-1"
