"""Fixtures of the CLI tests: the real CLI, as a subprocess, against the module's live server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import Cli, logged_in
from tests.support.server import LiveServer


@pytest.fixture
async def cli(live_server: LiveServer, tmp_path: Path) -> Cli:
    """Signed in as a fresh guest, in a config dir of its own."""
    return await logged_in(live_server, tmp_path / "config")


@pytest.fixture
def anon(live_server: LiveServer, tmp_path: Path) -> Cli:
    """Never signed in."""
    return Cli(live_server.base_url, tmp_path / "anon-config")
