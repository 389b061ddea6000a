"""Engine, sessions and the one way to run a transaction.

`transaction()` commits on exit and rolls back on any exception; resolvers only `flush()`.
Driver errors that mean "the database refused this" are translated here, in one place."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.driver import STATEMENT_LOG_ENV, log_statement
from chatroom.db.errors import ConstraintViolation
from chatroom.db.events import write_pending_events
from chatroom.db.models import RoomEvent

log = logging.getLogger("chatroom.db")


def to_asyncpg_url(url: str) -> str:
    """Accept `postgresql://`, `postgres://` or `postgresql+asyncpg://` and return the latter."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def to_libpq_url(url: str) -> str:
    """The same URL for plain asyncpg.connect / psql (no SQLAlchemy driver suffix)."""
    parsed = make_url(to_asyncpg_url(url))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        to_asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    if os.environ.get(STATEMENT_LOG_ENV):
        event.listen(engine.sync_engine, "before_cursor_execute", _log_statement)
    return engine


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Replace, at checkout, a pooled connection that cannot serve a fresh transaction: closed
    by the server (a restart, a terminated backend), or still inside a transaction (a request
    cancelled mid-statement can leave one open when its rollback could not run; handed out,
    its locks would stall every later writer of the room). The pool then opens a new one.
    The driver already knows both, so this costs no round trip: `pool_pre_ping` asked the
    server every time (with asyncpg: BEGIN, a ping, ROLLBACK), about 0.7 ms of CPU per
    transaction, more than most statements cost."""
    driver = dbapi_connection.driver_connection
    if driver.is_closed() or driver.is_in_transaction():
        raise DisconnectionError("this pooled connection cannot start a transaction")


def _log_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    log_statement(statement)


class Database:
    """What the app keeps for its lifetime: the engine and a session factory."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        # Told the room events of each transaction that committed (the app hands them to this
        # process's live feeds: chatroom/db/feed.py's FeedCache.committed).
        self.on_commit: Callable[[list[RoomEvent]], None] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction: commit on normal exit, roll back on any exception."""
        written: list[RoomEvent] = []
        async with self.sessions() as session:
            try:
                async with session.begin():
                    yield session
                    written = await write_pending_events(session)
            except IntegrityError as exc:
                raise ConstraintViolation.from_integrity_error(exc) from exc
        if written and self.on_commit is not None:
            try:
                self.on_commit(written)
            except Exception:  # committed all the same: the notification still delivers it
                log.exception("handing committed events to this process's feeds failed")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A short read-only transaction for queries."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
