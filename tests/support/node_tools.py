"""The Node tools that tests drive for real, installed by ``scripts/npm-tools`` (CI runs it).

A test that needs one asks here: a missing tool is a failure that names the install command,
never a skip, so a CI machine without them cannot pass quietly.
"""

from __future__ import annotations

from pathlib import Path

NODE_TOOLS = Path(__file__).resolve().parents[2] / "tools" / "node"
NODE_BIN = NODE_TOOLS / "node_modules" / ".bin"


def node_tool(name: str) -> Path:
    """The path of an installed Node tool's executable (e.g. ``claude``)."""
    path = NODE_BIN / name
    if not path.exists():
        raise AssertionError(f"{path} is missing: run scripts/npm-tools (CI's .ci/run does)")
    return path


def node_module(name: str) -> Path:
    """The folder of an installed Node package (e.g. ``graphql-http``), for `node` scripts."""
    path = NODE_TOOLS / "node_modules" / name
    if not path.is_dir():
        raise AssertionError(f"{path} is missing: run scripts/npm-tools (CI's .ci/run does)")
    return path
