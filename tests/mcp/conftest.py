"""Fixtures of the MCP tests: a signed-in CLI (its config holds the token `chatroom mcp` uses)
against the module's live server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import Cli, logged_in
from tests.support.server import LiveServer


@pytest.fixture
async def cli(live_server: LiveServer, tmp_path: Path) -> Cli:
    return await logged_in(live_server, tmp_path / "config")
