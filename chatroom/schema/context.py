"""Per-request context: the database handle, the caller's bearer token, a request id, and
batch loaders. No session is kept here (a websocket would pin a pooled connection)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from chatroom.config import settings
from chatroom.db.feed import FeedCache
from chatroom.db.listener import Hub
from chatroom.db.models import Message, Participant, Task
from chatroom.db.session import Database
from chatroom.resolvers import messages, participants, tasks
from chatroom.resolvers.agents import SlotView, slots_by_room
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import RateLimited
from chatroom.schema.limits import RateLimiter, bearer_token, client_key

K = TypeVar("K")
V = TypeVar("V")


def _batch(
    db: Database, fetch: Callable[[AsyncSession, list[K]], Awaitable[dict[K, V]]]
) -> Callable[[Sequence[K]], Awaitable[list[V | None]]]:
    async def load(keys: Sequence[K]) -> list[V | None]:
        async with db.read() as tx:
            found = await fetch(tx, list(keys))
        return [found.get(k) for k in keys]

    return load


@dataclass
class Loaders:
    messages: DataLoader[uuid.UUID, Message | None]
    tasks: DataLoader[uuid.UUID, Task | None]
    participants: DataLoader[uuid.UUID, list[Participant] | None]
    agents: DataLoader[uuid.UUID, list[SlotView] | None]

    @classmethod
    def for_request(cls, db: Database) -> Loaders:
        return cls(
            # No caching: a websocket's context lives for the whole connection.
            messages=DataLoader(_batch(db, messages.messages_by_id), cache=False),
            tasks=DataLoader(_batch(db, tasks.tasks_by_id), cache=False),
            participants=DataLoader(_batch(db, participants.participants_by_room), cache=False),
            agents=DataLoader(_batch(db, slots_by_room), cache=False),
        )


@dataclass
class RequestContext:
    db: Database
    hub: Hub
    feeds: FeedCache
    rate_limiter: RateLimiter
    header_token: str | None
    request: Any
    response: Any = None
    # Set by Strawberry from the websocket's connection_init payload.
    connection_params: dict[str, Any] | None = None
    request_id: str = field(default_factory=lambda: secrets.token_hex(6))
    open_subscriptions: int = 0
    loaders: Loaders | None = None
    # Who was authenticated for this request (for the request log), once known.
    user_id: str | None = None

    def __post_init__(self) -> None:
        self.loaders = Loaders.for_request(self.db)

    def seen(self, caller: Caller) -> Caller:
        """Remember the authenticated caller's user for the request log; returns it."""
        self.user_id = str(caller.user_id)
        return caller

    @contextmanager
    def subscription_slot(self) -> Iterator[None]:
        """One of this connection's subscriptions (the context lives as long as the socket)."""
        limit = settings().max_subscriptions_per_connection
        if self.open_subscriptions >= limit:
            raise RateLimited(
                f"This connection already has {limit} subscriptions open (the limit). Close one, "
                "or open another connection."
            )
        self.open_subscriptions += 1
        try:
            yield
        finally:
            self.open_subscriptions -= 1

    def check_rate(self, caller: Caller | None = None) -> None:
        """One mutation's worth of the caller's rate limit (RATE_LIMITED when exhausted): per
        authenticated session, else per client address (a made-up token buys nothing)."""
        self.rate_limiter.check(client_key(caller, getattr(self.request, "scope", None)))

    @property
    def token(self) -> str | None:
        """The bearer token: HTTP header, or `authorization` in connection_init (websockets)."""
        if self.header_token:
            return self.header_token
        params = self.connection_params or {}
        value = params.get("authorization") or params.get("Authorization")
        return bearer_token(value) if isinstance(value, str) else None


AppInfo = Info[RequestContext, None]
