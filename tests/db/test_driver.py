"""Statements sent straight to the driver connection (chatroom/db/driver.py) behave as if they
had gone through SQLAlchemy: in the session's transaction, refused with the same errors, and
leaving the pool usable; the pool never hands out a connection still inside a transaction."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.db import driver
from chatroom.db.errors import ConstraintViolation
from chatroom.db.session import Database
from tests.support import dbutil
from tests.support.pg import PgDatabase

_INSERT_USER = "INSERT INTO users (id, display_name, created_at) VALUES ($1, 'x', now())"


async def test_a_refused_statement_is_a_constraint_violation_and_rolls_back(
    db: PgDatabase, engine: AsyncEngine
) -> None:
    database = Database(engine)
    user_id = uuid.uuid4()
    with pytest.raises(ConstraintViolation) as refused:
        async with database.transaction() as tx:
            await driver.execute(tx, _INSERT_USER, user_id)
            await driver.execute(tx, _INSERT_USER, user_id)  # the same primary key
    assert refused.value.constraint == "pk_users"
    # Both inserts were one transaction: neither stayed.
    assert await dbutil.fetchval(db.url, "SELECT count(*) FROM users WHERE id = $1", user_id) == 0
    # The connection went back to the pool usable.
    async with database.transaction() as tx:
        await driver.execute(tx, _INSERT_USER, user_id)
    assert await dbutil.fetchval(db.url, "SELECT count(*) FROM users WHERE id = $1", user_id) == 1


async def test_the_pool_replaces_a_connection_left_inside_a_transaction(
    engine: AsyncEngine,
) -> None:
    """What a request cancelled mid-statement can leave behind: a pooled connection whose
    transaction is still open (with its locks). Checkout must not hand it out."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        stale = raw.driver_connection
        assert stale is not None
        await stale.execute("BEGIN")  # behind SQLAlchemy's back: it will not roll this back
        stale_pid = stale.get_server_pid()
    async with engine.connect() as connection:
        fresh = (await connection.get_raw_connection()).driver_connection
        assert fresh is not None
        assert not fresh.is_in_transaction()
        assert fresh.get_server_pid() != stale_pid
