"""Shared fixtures: one PostgreSQL server per run, a migrated template, clones per test.

Database fixtures (every database is an Alembic-migrated clone, never create_all):
  pg_server     session   the server: DATABASE_URL's, or an embedded one in a tmp dir
  template_db   session   migrated once; sealed (no connections) so cloning never fails
  fresh_db      function  factory: ``await fresh_db()`` -> PgDatabase, dropped at teardown
  db            function  one fresh PgDatabase for this test
  module_db     module    one fresh PgDatabase shared by a module (live_server's)
  engine        function  AsyncEngine on ``db`` (small pool)
  sessionmaker  function  async_sessionmaker[AsyncSession] on ``engine``

Server fixtures (a real uvicorn subprocess on a loopback port):
  live_server   module    on ``module_db``
  start_server  function  factory: ``await start_server(db_url, extra_env=None)``
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.accounts.passwords import ALL as PASSWORDS
from tests.support.pg import TEMPLATE_PREFIX, PgDatabase, PgServer
from tests.support.server import LOG_PATHS, TOKEN_SHAPE, LiveServer

_OWN_BASETEMP = pytest.StashKey[Path]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Each run gets a base temporary directory of its own. pytest's default
    (/tmp/pytest-of-<user>/pytest-<N>) is numbered per run and pruned by later runs, so
    several runs at once on one machine (developers, agents, CI) removed each other's embedded
    PostgreSQL data directories mid-test. `--basetemp` still chooses one explicitly. A run
    that passes removes its directory; a failed one leaves it for reading."""
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="chatroom-tests-")
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own is not None and exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)


# Embedded PostgreSQL allows 100 connections in all; the server under test has
# its own pool, so keep in-process test pools small.
TEST_POOL_SIZE = 5
TEST_MAX_OVERFLOW = 5

FreshDb = Callable[[], Awaitable[PgDatabase]]
StartServer = Callable[..., Awaitable[LiveServer]]


@pytest.fixture(scope="session")
async def pg_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PgServer]:
    url = os.environ.get("DATABASE_URL")
    if url:
        # The given database is our maintenance db: it exists and we may connect
        # to it; we never drop it nor clone from it.
        server = PgServer(url, admin_db=_database_name(url))
        async with server.admin():  # fail early and clearly if unreachable
            pass
        yield server
        return

    from chatroom.db.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pgdata"))
    started = await asyncio.to_thread(embedded.start)
    try:
        yield PgServer(started, admin_db="postgres")
    finally:
        await asyncio.to_thread(embedded.stop)


def _database_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    assert name, f"DATABASE_URL names no database: {url}"
    return name


@pytest.fixture(scope="session")
async def template_db(pg_server: PgServer) -> AsyncIterator[PgDatabase]:
    from chatroom.db.migrate import upgrade_to_head

    tpl = await pg_server.create_database(pg_server.unique_name(TEMPLATE_PREFIX))
    try:
        # Synchronous Alembic (its env.py runs its own event loop): off this loop.
        await asyncio.to_thread(upgrade_to_head, tpl.url)
        await pg_server.seal_template(tpl.name)
        yield tpl
    finally:
        await pg_server.drop_database(tpl.name)


async def _clone(pg_server: PgServer, template: PgDatabase) -> PgDatabase:
    return await pg_server.create_database(pg_server.unique_name(), template=template.name)


@pytest.fixture
async def fresh_db(pg_server: PgServer, template_db: PgDatabase) -> AsyncIterator[FreshDb]:
    created: list[PgDatabase] = []

    async def make() -> PgDatabase:
        db = await _clone(pg_server, template_db)
        created.append(db)
        return db

    yield make
    for db in created:
        await pg_server.drop_database(db.name)


@pytest.fixture
async def db(fresh_db: FreshDb) -> PgDatabase:
    return await fresh_db()


@pytest.fixture(scope="module")
async def module_db(pg_server: PgServer, template_db: PgDatabase) -> AsyncIterator[PgDatabase]:
    db = await _clone(pg_server, template_db)
    yield db
    await pg_server.drop_database(db.name)


@pytest.fixture
async def engine(db: PgDatabase) -> AsyncIterator[AsyncEngine]:
    from chatroom.db.session import create_engine

    eng = create_engine(db.url, pool_size=TEST_POOL_SIZE, max_overflow=TEST_MAX_OVERFLOW)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@pytest.fixture(scope="module")
async def live_server(
    module_db: PgDatabase, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    server = LiveServer(module_db.url, _log_path(tmp_path_factory))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def start_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StartServer]:
    started: list[LiveServer] = []

    async def start(db_url: str, extra_env: Mapping[str, str] | None = None) -> LiveServer:
        server = LiveServer(db_url, _log_path(tmp_path_factory), extra_env)
        started.append(server)
        await server.start()
        return server

    yield start
    for server in started:
        await server.stop()


def _log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="session", autouse=True)
def no_token_in_any_server_log() -> Iterator[None]:
    """After the whole run: no server log of any test holds a token or a password a test sent
    (SPEC §5, §12: secrets are never logged). Failing here fails the run, naming the log and
    a prefix of the match."""
    yield
    leaks: list[str] = []
    for path in dict.fromkeys(LOG_PATHS):
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        leaks += [f"{path}: {m.group(0)[:10]}..." for m in TOKEN_SHAPE.finditer(text)]
        # Nor any password a test sent (tests/accounts/passwords.py lists them).
        leaks += [f"{path}: a test password ({p[:3]}...)" for p in PASSWORDS if p in text]
    assert not leaks, "secrets in server logs:\n" + "\n".join(leaks)
