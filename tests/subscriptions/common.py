"""What the live-delivery tests add to the shared layer (``tests.support.api``): the two
subscriptions on either websocket subprotocol, their results, and /healthz.

Everything goes through a real uvicorn server with the real gql client: mutations and queries
over HTTP, subscriptions over websockets (``gql_ws``) on either subprotocol. Direct database
reads are ``tests.support.room_rows``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from tests.support.api import DELIVERY_TIMEOUT, Stream, connect, new_token, subscription
from tests.support.documents import ROOM_EVENTS, TASK_AVAILABLE
from tests.support.gql_client import Subprotocol
from tests.support.server import LiveServer
from tests.support.server import healthz as health

PROTOCOLS: list[Subprotocol] = ["graphql-transport-ws", "graphql-ws"]


async def new_room(server: LiveServer, **fields: Any) -> tuple[str, str]:
    """A fresh owner and a pair room: (token, room id)."""
    token = await new_token(server, "live")
    fields.setdefault("name", "live delivery")
    async with connect(server, token) as a:
        room = await a.create_room(**fields)
    return token, str(room["id"])


def task_available(
    server: LiveServer, token: str | None, protocol: Subprotocol, room_id: str, role: str
) -> AbstractAsyncContextManager[Stream]:
    return subscription(server, token, protocol, TASK_AVAILABLE, c=room_id, r=role)


def room_events(
    server: LiveServer,
    token: str | None,
    protocol: Subprotocol,
    room_id: str,
    after_seq: int | None = None,
) -> AbstractAsyncContextManager[Stream]:
    return subscription(server, token, protocol, ROOM_EVENTS, c=room_id, after=after_seq)


@asynccontextmanager
async def waiting(
    server: LiveServer, token: str, protocol: Subprotocol, room_id: str, *roles: str
) -> AsyncIterator[list[Stream]]:
    """A taskAvailable waiter for each role, in order, each registered (its role WAITING)
    before the body runs."""
    async with connect(server, token) as a, AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(task_available(server, token, protocol, room_id, r))
            for r in roles
        ]
        for role in roles:
            await a.wait_status(room_id, role, "WAITING")
        yield streams


async def delivery(stream: Stream, within: float = DELIVERY_TIMEOUT) -> dict[str, Any]:
    return (await stream.next(within))["taskAvailable"]


async def event(stream: Stream, within: float = DELIVERY_TIMEOUT) -> dict[str, Any]:
    return (await stream.next(within))["roomEvents"]


async def events_through(
    stream: Stream, last_seq: int, within: float = DELIVERY_TIMEOUT
) -> list[dict[str, Any]]:
    """Read events until (and including) ``last_seq``; TimeoutError says where they stopped."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while not out or out[-1]["seq"] < last_seq:
        try:
            out.append(await event(stream, max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            got = f"{out[0]['seq']}..{out[-1]['seq']}" if out else "nothing"
            raise TimeoutError(
                f"events through seq {last_seq} expected within {within}s; received {got}"
            ) from None
    return out


async def healthz(server: LiveServer) -> dict[str, Any]:
    """/healthz's body; it must answer 200."""
    status, body = await health(server)
    assert status == 200, (status, body)
    return body
