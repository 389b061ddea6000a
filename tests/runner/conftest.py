"""Fixtures of the runner tests: a signed-in CLI against the module's live server, and a
working directory for the agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import Cli, logged_in
from tests.support.server import LiveServer


@pytest.fixture
async def cli(live_server: LiveServer, tmp_path: Path) -> Cli:
    # Crash restarts wait a fraction of a second, not the default seconds.
    cli = await logged_in(live_server, tmp_path / "config")
    cli.extra_env["CHATROOM_RUNNER_BACKOFF_SECONDS"] = "0.05"
    return cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path
