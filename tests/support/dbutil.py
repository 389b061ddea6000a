"""Direct asyncpg access to a test database, bypassing the application.

Used to check what really got committed (atomicity tests compare full
snapshots before and after a failing operation).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support.pg import asyncpg_dsn, quote_ident

# Tables in `public` with their primary-key columns (in key order). Tables
# without a primary key get an empty list and are sorted in Python instead.
_TABLES_SQL = """
SELECT c.relname AS table_name,
       COALESCE(
         (SELECT array_agg(a.attname ORDER BY k.ord)
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indrelid = c.oid AND i.indisprimary),
         '{}'::name[]) AS pk
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
 ORDER BY c.relname
"""


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url))


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await _connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def fetchrow(url: str, sql: str, *args: Any) -> asyncpg.Record | None:
    conn = await _connect(url)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


async def fetchval(url: str, sql: str, *args: Any) -> Any:
    conn = await _connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def execute(url: str, sql: str, *args: Any) -> str:
    conn = await _connect(url)
    try:
        return await conn.execute(sql, *args)
    finally:
        await conn.close()


async def snapshot_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every public table (but ``alembic_version``), in primary-key order.

    One REPEATABLE READ transaction, so the snapshot is consistent even if the
    server is still writing.
    """
    conn = await _connect(url)
    try:
        snapshot: dict[str, list[tuple[Any, ...]]] = {}
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for table in await conn.fetch(_TABLES_SQL):
                name: str = table["table_name"]
                pk: list[str] = list(table["pk"])
                sql = f"SELECT * FROM {quote_ident(name)}"
                if pk:
                    sql += " ORDER BY " + ", ".join(quote_ident(c) for c in pk)
                rows = [tuple(r) for r in await conn.fetch(sql)]
                if not pk:
                    rows.sort(key=repr)
                snapshot[name] = rows
        return snapshot
    finally:
        await conn.close()
