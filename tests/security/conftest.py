"""Fixtures of the security tests. Every server these tests use is tracked, and after each test
its new log lines are scanned: no token, and no SQL, driver text or traceback outside an error
logged with a request id (see common.log_problems)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

import pytest

from tests.security.common import LOG_WATCH
from tests.support.pg import PgDatabase
from tests.support.server import LiveServer

Spawn = Callable[..., Awaitable[LiveServer]]


@pytest.fixture(autouse=True)
def _scan_server_logs() -> Iterator[None]:
    """Runs its teardown last (autouse fixtures are set up first), so servers the test
    started have already stopped and their logs are complete."""
    yield
    problems, client_gone = LOG_WATCH.scan()
    LOG_WATCH.forget_stopped()
    if client_gone:
        # Strawberry logs a traceback (no request id) when a client vanishes while a result
        # is being sent: a known defect (docs/security.md, "Known issues" 6), held by
        # test_secrets.py::test_an_agent_restarting_its_wait_leaves_no_traceback_in_the_log.
        # Elsewhere it is a race, so it is a warning rather than a random failure.
        warnings.warn(
            f"{client_gone} 'Exception in worker task' traceback(s) from a vanished websocket "
            "client in the server log",
            stacklevel=1,
        )
    if problems:
        pytest.fail("server log leaks:\n" + "\n".join(problems[:20]), pytrace=False)


@pytest.fixture(scope="module")
def server(live_server: LiveServer) -> LiveServer:
    """The module's server (top-level ``live_server``), tracked by the log scan."""
    return LOG_WATCH.track(live_server)


@pytest.fixture
async def spawn(start_server: Callable[..., Awaitable[LiveServer]]) -> AsyncIterator[Spawn]:
    """``await spawn(db_url, **env)``: a server of this test with extra environment, tracked
    by the log scan."""

    async def start(db_url: str, extra_env: Mapping[str, str] | None = None) -> LiveServer:
        return LOG_WATCH.track(await start_server(db_url, extra_env=extra_env))

    yield start


@pytest.fixture
async def db_url(fresh_db: Callable[[], Awaitable[PgDatabase]]) -> str:
    return (await fresh_db()).url
