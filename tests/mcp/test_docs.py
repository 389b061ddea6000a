"""docs/mcp.md's registrations, run with the real agent CLIs: the documented `claude mcp add`
uses only options `claude mcp add --help` lists, registers `chatroom mcp` as written, and
Claude Code then connects to it (its own MCP handshake with our server); Codex reads the
documented config.toml entry as written."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import tomllib
from pathlib import Path

from tests.cli.support import REPO_ROOT, VENV_BIN
from tests.support.node_tools import node_tool

DOC = REPO_ROOT / "docs" / "mcp.md"
RUN_TIMEOUT = 90.0
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(kind: str = "") -> list[str]:
    return [body for lang, body in FENCE.findall(DOC.read_text()) if lang == kind]


async def run(*args: str, home: Path, cwd: Path, extra: dict[str, str]) -> tuple[int, str]:
    env = {
        "HOME": str(home),
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",  # `chatroom` resolves to this checkout's
        "PYTHONPATH": str(REPO_ROOT),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **extra,
    }
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_the_documented_claude_mcp_add_works_with_the_real_claude(tmp_path: Path) -> None:
    claude = str(node_tool("claude"))
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    adds = [
        shlex.split(line)
        for body in blocks()
        for line in body.splitlines()
        if line.startswith("claude mcp add ")
    ]
    assert len(adds) == 1, adds
    words = adds[0]
    split = words.index("--")
    options, command = words[3:split], words[split + 1 :]
    assert command[:2] == ["chatroom", "mcp"]

    rc, helptext = await run(claude, "mcp", "add", "--help", home=home, cwd=project, extra={})
    assert rc == 0, helptext
    listed = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", helptext))
    flags = [w for w in options if w.startswith("-")]
    assert flags and set(flags) <= listed, (flags, sorted(listed))

    rc, out = await run(claude, *words[1:], home=home, cwd=project, extra={})
    assert rc == 0, out
    # `claude mcp add [options] <name> ...`: the name first (a variadic -e would take it).
    name = options[0]
    assert not name.startswith("-")
    config = json.loads((home / ".claude.json").read_text())
    server = config["projects"][str(project)]["mcpServers"][name]
    assert [server["command"], *server["args"]] == command
    env_pairs = [options[i + 1] for i, w in enumerate(options) if w in ("-e", "--env")]
    assert server["env"] == dict(pair.split("=", 1) for pair in env_pairs)

    # Claude Code starts `chatroom mcp` and completes the MCP handshake with it.
    rc, out = await run(claude, "mcp", "get", name, home=home, cwd=project, extra={})
    assert rc == 0, out
    assert "Connected" in out, out
    assert f"Args: {' '.join(command[1:])}" in out, out

    # What Claude Code sends: the handshake era (where it takes channel notifications), as
    # Claude Code, and no tool call (a health check must not take the role over).
    log = tmp_path / "stdin.log"
    spied = f"tee {shlex.quote(str(log))} | {shlex.join(command)}"
    add = ("mcp", "add", "spy", "--", "bash", "-c", spied)
    rc, out = await run(claude, *add, home=home, cwd=project, extra={})
    assert rc == 0, out
    rc, out = await run(claude, "mcp", "get", "spy", home=home, cwd=project, extra={})
    assert rc == 0 and "Connected" in out, out
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    methods = [m.get("method") for m in sent]
    assert "initialize" in methods and "notifications/initialized" in methods, methods
    hello = next(m for m in sent if m.get("method") == "initialize")
    assert hello["params"]["clientInfo"]["name"] == "claude-code"
    assert "tools/call" not in methods


async def test_the_documented_codex_config_is_read_by_the_real_codex(tmp_path: Path) -> None:
    codex = str(node_tool("codex"))
    (toml,) = blocks("toml")
    entry = tomllib.loads(toml)["mcp_servers"]["chatroom"]
    assert entry["command"] == "chatroom" and entry["args"][0] == "mcp"
    codex_home = tmp_path / "codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(toml)
    rc, out = await run(
        codex, "mcp", "get", "chatroom",
        home=tmp_path, cwd=tmp_path, extra={"CODEX_HOME": str(codex_home)},
    )  # fmt: skip
    assert rc == 0, out
    assert "transport: stdio" in out and "command: chatroom" in out, out
    assert f"args: {' '.join(entry['args'])}" in out, out
    assert f"tool_timeout_sec: {entry['tool_timeout_sec']}" in out, out


def test_the_generic_entry_is_valid_json() -> None:
    (body,) = blocks("json")
    entry = json.loads(body)["mcpServers"]["chatroom"]
    assert entry["command"] == "chatroom" and entry["args"][0] == "mcp"
