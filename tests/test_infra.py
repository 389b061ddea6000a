"""The shared test infrastructure itself: clones, template, snapshots, live server, clients."""

from __future__ import annotations

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from chatroom.db.migrate import alembic_config
from tests.support import dbutil
from tests.support.pg import PgDatabase, PgServer, asyncpg_dsn, sqlalchemy_url


def test_url_conversions() -> None:
    sock = "postgresql+asyncpg://postgres@/chatroom?host=/tmp/x/pgdata"
    dsn = make_url(asyncpg_dsn(sock))  # asyncpg unquotes the %2F-escaped host itself
    assert (dsn.drivername, dsn.database, dsn.query["host"]) == (
        "postgresql",
        "chatroom",
        "/tmp/x/pgdata",
    )
    tcp = "postgresql://postgres@127.0.0.1:5432/test"
    assert sqlalchemy_url(tcp, "other") == "postgresql+asyncpg://postgres@127.0.0.1:5432/other"


async def test_fresh_clones_are_independent(fresh_db) -> None:
    a, b = await fresh_db(), await fresh_db()
    assert a.name != b.name
    await dbutil.execute(a.url, "CREATE TABLE infra_probe (id int PRIMARY KEY)")
    await dbutil.execute(a.url, "INSERT INTO infra_probe VALUES (1)")
    assert await dbutil.fetchval(a.url, "SELECT count(*) FROM infra_probe") == 1
    assert await dbutil.fetchval(b.url, "SELECT to_regclass('infra_probe')") is None


async def test_clone_is_migrated_to_head(db: PgDatabase) -> None:
    heads = ScriptDirectory.from_config(alembic_config(db.url)).get_heads()
    rows = await dbutil.fetch(db.url, "SELECT version_num FROM alembic_version")
    assert sorted(r["version_num"] for r in rows) == sorted(heads)
    assert heads, "no migrations found"


async def test_template_refuses_connections(template_db: PgDatabase) -> None:
    # A stray connection to the template would make every later clone fail.
    with pytest.raises(asyncpg.PostgresError, match="not currently accepting connections"):
        await asyncpg.connect(template_db.dsn)


async def test_clones_are_dropped(pg_server: PgServer, fresh_db) -> None:
    db = await fresh_db()
    async with pg_server.admin() as conn:
        assert await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db.name)
    await pg_server.drop_database(db.name)  # what the fixture does at teardown
    async with pg_server.admin() as conn:
        assert await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db.name) is None


async def test_snapshot_tables(db: PgDatabase) -> None:
    before = await dbutil.snapshot_tables(db.url)
    assert "alembic_version" not in before
    await dbutil.execute(db.url, 'CREATE TABLE "probe" (k int, v text, PRIMARY KEY (v, k))')
    await dbutil.execute(db.url, "CREATE TABLE probe_nopk (x int)")
    await dbutil.execute(db.url, "INSERT INTO probe VALUES (2, 'a'), (1, 'b'), (1, 'a')")
    await dbutil.execute(db.url, "INSERT INTO probe_nopk VALUES (3), (1), (2)")
    after = await dbutil.snapshot_tables(db.url)
    assert after["probe"] == [(1, "a"), (2, "a"), (1, "b")]
    assert after["probe_nopk"] == [(1,), (2,), (3,)]
    assert {k: v for k, v in after.items() if not k.startswith("probe")} == before
    assert await dbutil.snapshot_tables(db.url) == after


async def test_engine_and_sessionmaker_share_the_fresh_db(
    db: PgDatabase, engine, sessionmaker
) -> None:
    from sqlalchemy import text

    async with sessionmaker() as session:
        name = (await session.exec(text("SELECT current_database()"))).scalar_one()
    assert name == db.name
    assert engine.pool.size() <= 10


class TestModuleDb:
    first: str | None = None

    async def test_first(self, module_db: PgDatabase) -> None:
        await dbutil.execute(module_db.url, "CREATE TABLE IF NOT EXISTS shared_probe (x int)")
        TestModuleDb.first = module_db.name

    async def test_shared_within_module(self, module_db: PgDatabase) -> None:
        assert module_db.name == TestModuleDb.first
        assert await dbutil.fetchval(module_db.url, "SELECT to_regclass('shared_probe')::text")
