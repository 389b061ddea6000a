"""Every flag an adapter puts in an argument vector is one the real CLI's `--help` lists (the
CLIs come from npm via scripts/npm-tools; their help runs offline with a scratch HOME)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from chatroom.runner.harnesses import make
from chatroom.runner.harnesses.turn import Turn
from tests.support.node_tools import NODE_TOOLS, node_tool

# opencode comes as its platform's binary package (tools/node/package.json says why).
OPENCODE = NODE_TOOLS / "node_modules" / "opencode-linux-x64" / "bin" / "opencode"


def _executable(name: str) -> Path:
    if name == "opencode":
        assert OPENCODE.exists(), f"{OPENCODE} is missing: run scripts/npm-tools (linux-x64 only)"
        return OPENCODE
    return node_tool(name)


def _turns(tmp_path: Path) -> list[Turn]:
    base = dict(prompt="do it", prompt_file=tmp_path / "p.md", guidance="be the builder")
    return [
        Turn(**base, resume=None, new_session="0b5e6c1c-5d3a-4d8e-9a53-1f0b1f2e3d4c", model=None),
        Turn(**base, resume="a-session", new_session=None, model="some-model"),
    ]


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_every_flag_is_in_the_clis_help(name: str, tmp_path: Path) -> None:
    adapter = make(name)
    exe = _executable(adapter.executable)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    (tmp_path / "home").mkdir()
    checked = 0
    for turn in _turns(tmp_path):
        inv = adapter.invocation(turn)
        assert inv.argv[0] == adapter.executable
        done = subprocess.run(
            [str(exe), *inv.subcommand, "--help"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        help_text = done.stdout + done.stderr  # opencode prints its help on stderr
        assert "Usage" in help_text or "usage" in help_text or "Options" in help_text, help_text
        listed = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_text))
        # Everything after `--` is the message, not flags.
        flags_part = inv.argv[: inv.argv.index("--")] if "--" in inv.argv else inv.argv
        for word in flags_part[1:]:
            if word.startswith("-") and word != "-":
                flag = word.split("=", 1)[0]
                assert flag in listed, f"{name} {' '.join(inv.subcommand)}: {flag} not in --help"
                checked += 1
    assert checked >= 4


def test_the_command_template_takes_the_prompt_file_as_one_word(tmp_path: Path) -> None:
    adapter = make("command", command="my-agent --in {prompt_file} --x='a b'")
    turn = _turns(tmp_path)[0]
    inv = adapter.invocation(turn)
    assert inv.argv == ["my-agent", "--in", str(tmp_path / "p.md"), "--x=a b"]
    assert inv.stdin == b"do it"


def test_claude_resumes_the_session_it_is_given(tmp_path: Path) -> None:
    fresh, resumed = (make("claude").invocation(t).argv for t in _turns(tmp_path))
    assert "--session-id" in fresh and "--resume" not in fresh
    assert resumed[resumed.index("--resume") + 1] == "a-session"
    assert resumed[resumed.index("--model") + 1] == "some-model"
