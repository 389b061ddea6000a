"""Run one resolver call as the authenticated caller, in one transaction (mutations) or one
short read (queries). This is the only place the schema layer opens a transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.resolvers.auth import Caller, authenticate
from chatroom.schema.context import AppInfo

T = TypeVar("T")
Work = Callable[[AsyncSession, Caller], Awaitable[T]]


async def in_transaction(info: AppInfo, work: Work[T]) -> T:
    async with info.context.db.transaction() as tx:
        caller = info.context.seen(await authenticate(tx, info.context.token))
        info.context.check_rate(caller)
        return await work(tx, caller)


async def in_read(info: AppInfo, work: Work[T]) -> T:
    async with info.context.db.read() as tx:
        return await work(tx, info.context.seen(await authenticate(tx, info.context.token)))
