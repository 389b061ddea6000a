"""What only the API tests need on top of the shared layer (``tests.support.api``): many
clients released at once against one room."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gql.transport.exceptions import TransportQueryError

from tests.support.api import Api, connect
from tests.support.gql_client import error_of
from tests.support.server import LiveServer

T = TypeVar("T")
Outcome = tuple[str, Any]
BARRIER_TIMEOUT = 30.0


async def concurrently(
    server: LiveServer, token: str, n: int, op: Callable[[Api, int], Awaitable[T]]
) -> list[Outcome]:
    """Run ``op`` n times at once, each on its OWN HTTP client (own connection pool).

    All clients are opened first and released together through a barrier, so the requests
    really overlap on the server. Each result is ("ok", value) or ("error", code).
    """
    barrier = asyncio.Barrier(n)

    async def one(i: int) -> Outcome:
        async with connect(server, token) as api:
            async with asyncio.timeout(BARRIER_TIMEOUT):  # a client that never opens fails fast
                await barrier.wait()
            try:
                return ("ok", await op(api, i))
            except TransportQueryError as exc:
                return ("error", error_of(exc)[0])

    return list(await asyncio.gather(*(one(i) for i in range(n))))
