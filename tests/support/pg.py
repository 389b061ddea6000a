"""PostgreSQL server handle for tests: URLs per database and admin DDL.

Tests never share a database they write to: a template is migrated once per
run and every test (or module) gets a ``CREATE DATABASE ... TEMPLATE`` clone.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

# One prefix per run: pid + random, so two runs (or xdist workers) on one
# shared server never collide, and leftovers of a crashed run are recognisable.
RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
TEMPLATE_PREFIX = "chatroom_tpl_"
CLONE_PREFIX = "chatroom_t_"


def sqlalchemy_url(url: str, database: str | None = None) -> str:
    """The asyncpg-flavoured SQLAlchemy URL, optionally for another database."""
    u = make_url(url).set(drivername="postgresql+asyncpg")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants plain ``postgresql://``; it understands ``?host=<socket dir>``."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class PgDatabase:
    """A test database: its name and its SQLAlchemy (asyncpg) URL."""

    name: str
    url: str

    @property
    def dsn(self) -> str:
        """The same database as an asyncpg DSN."""
        return asyncpg_dsn(self.url)


class PgServer:
    """A running PostgreSQL server (external or embedded) that tests may create databases on."""

    def __init__(self, base_url: str, admin_db: str) -> None:
        self._base_url = sqlalchemy_url(base_url)
        # The admin (maintenance) database is never a template nor dropped, so
        # holding a connection to it cannot block CREATE/DROP DATABASE.
        self.admin_db = admin_db
        self._counter = 0

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy asyncpg URL of ``dbname`` on this server."""
        return sqlalchemy_url(self._base_url, dbname)

    @asynccontextmanager
    async def admin(self) -> AsyncIterator[asyncpg.Connection]:
        """A short-lived asyncpg connection to the maintenance database."""
        conn = await asyncpg.connect(asyncpg_dsn(self.url_for(self.admin_db)))
        try:
            yield conn
        finally:
            await conn.close()

    def unique_name(self, prefix: str = CLONE_PREFIX) -> str:
        self._counter += 1
        return f"{prefix}{RUN_ID}_{self._counter}"

    async def create_database(self, name: str, *, template: str | None = None) -> PgDatabase:
        # template0 + UTF8: independent of whatever the server's template1 holds.
        source = template if template is not None else "template0"
        ddl = f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(source)}"
        if template is None:
            ddl += " ENCODING 'UTF8'"
        async with self.admin() as conn:
            await conn.execute(ddl)
        return PgDatabase(name, self.url_for(name))

    async def drop_database(self, name: str) -> None:
        # FORCE (PG >= 13) terminates sessions a test or a killed server left behind.
        async with self.admin() as conn:
            await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")

    async def seal_template(self, name: str) -> None:
        """Disconnect everyone from ``name`` and forbid new connections.

        CREATE DATABASE ... TEMPLATE fails while anyone is connected to the
        template; a stray pooled connection (e.g. from the migration engine)
        or a test touching the template by mistake would break every clone.
        Clones get datallowconn = true again (CREATE DATABASE's default).
        """
        async with self.admin() as conn:
            await conn.execute(f"ALTER DATABASE {quote_ident(name)} WITH ALLOW_CONNECTIONS false")
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
