"""Fixed SQL texts sent straight to the driver (asyncpg) connection of a session's transaction.

The hot paths' statements are written once as text (chatroom/db/hot_sql.py, the commit's final
statement in chatroom/db/events.py): asyncpg prepares each text once per connection, and a call
only binds its values. Through SQLAlchemy the same statement costs ~2-3x the CPU (its execution
context, result processing and the greenlet bridge), which on the hot paths was more than the
SQL itself. The statement runs in the session's transaction (begun here if nothing ran yet),
and a driver error is raised as the exception SQLAlchemy would have raised for it, so callers
(the transaction's IntegrityError -> ConstraintViolation, the pool's disconnect handling) see
no difference."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TextIO

from asyncpg import Connection, Record
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

# For the benchmarks: a file to which every statement sent is appended (its first 120
# characters, parameters never), through SQLAlchemy (chatroom/db/session.py) or here, so a run
# can count statements per request, authentication included.
STATEMENT_LOG_ENV = "CHATROOM_STATEMENT_LOG"
_log: TextIO | None = None


def log_statement(statement: str) -> None:
    global _log
    path = os.environ.get(STATEMENT_LOG_ENV)
    if not path:
        return
    if _log is None:
        _log = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    _log.write(" ".join(statement.split())[:120] + "\n")


# Who else sees each statement sent here, with its parameters (bench/hot_paths.py's
# StatementLog, next to SQLAlchemy's cursor events, which these statements do not pass).
observers: list[Callable[[str, tuple[Any, ...]], None]] = []


async def flush_orm(tx: AsyncSession) -> None:
    """Flush the ORM's changes, if any, before a statement that does not go through the ORM
    (as autoflush would); the check is the session's own cheap one, so a clean session costs
    no round trip."""
    if not tx.sync_session._is_clean():
        await tx.flush()


_ADAPTED = "chatroom.driver_connection"  # tx.info: (the session transaction, its adapter)


async def _adapted(tx: AsyncSession) -> Any:
    """SQLAlchemy's adapter around the asyncpg connection, its transaction begun; looked up
    once per transaction (through the session it costs more than a statement's own work)."""
    current = tx.sync_session.get_transaction()
    cached = tx.info.get(_ADAPTED)
    if cached is not None and cached[0] is current and cached[1]._transaction is not None:
        return cached[1]
    connection = await tx.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    if adapted._transaction is None:  # the transaction's first statement: BEGIN, as SA would
        await adapted._start_transaction()
    tx.info[_ADAPTED] = (tx.sync_session.get_transaction(), adapted)
    return adapted


def _translated(adapted: Any, sql: str, args: tuple[Any, ...], error: Exception) -> Exception:
    try:
        adapted._handle_exception(error)  # raises the dialect's DBAPI-level error
    except adapted.dbapi.Error as dbapi_error:
        return DBAPIError.instance(sql, args, dbapi_error, adapted.dbapi.Error)
    except Exception as other:
        return other
    return error


async def _run(adapted: Any, sql: str, args: tuple[Any, ...]) -> list[Record]:
    log_statement(sql)
    for observer in observers:
        observer(sql, args)
    driver: Connection = adapted._connection
    try:
        return await driver.fetch(sql, *args)
    except Exception as error:
        raise _translated(adapted, sql, args, error) from error


async def fetch_alone(engine: AsyncEngine, sql: str, *args: Any) -> list[Record]:
    """One read outside any transaction, on a pooled connection: a lone statement is its own
    transaction, so no BEGIN and COMMIT (two round trips, each costing about what the read
    does). For the live feeds' reads of the event log, which run once per announcement.

    A read interrupted midway (its subscriber cancelled) leaves the driver connection busy
    until the server has answered, and with no transaction to roll back the pool would take
    it back as it is: it is discarded instead."""
    async with engine.connect() as connection:
        adapted: Any = (await connection.get_raw_connection()).dbapi_connection
        try:
            return await _run(adapted, sql, args)
        except BaseException:
            await connection.invalidate()
            raise


async def fetch(tx: AsyncSession, sql: str, *args: Any) -> list[Record]:
    """Run `sql` in the transaction, after any ORM change the caller made."""
    await flush_orm(tx)
    return await _run(await _adapted(tx), sql, args)


async def fetchrow(tx: AsyncSession, sql: str, *args: Any) -> Record | None:
    rows = await fetch(tx, sql, *args)
    return rows[0] if rows else None


async def execute(tx: AsyncSession, sql: str, *args: Any) -> None:
    await fetch(tx, sql, *args)
