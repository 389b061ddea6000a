"""A fresh database per test: signup modes and the first-account admin depend on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.support.pg import PgDatabase


@pytest.fixture
async def db_url(fresh_db: Callable[[], Awaitable[PgDatabase]]) -> str:
    return (await fresh_db()).url
