"""What every live subscription needs from its connection, and how it keeps its caller honest.

A subscription authenticates once, when it starts (inside its first transaction), and is then
woken the moment its session is revoked (the hub wakes it through the session's id); it asks
again then and at the token's expiry. Who may see or act in a room changes with a ROOM_UPDATED
event (a member removed or demoted, chatroom/resolvers/members.py), so after one the room's
access is asked again. Each refusal raises a coded error, which ends the subscription before it
yields anything more."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.feed import FeedCache
from chatroom.db.listener import Hub, Subscriber
from chatroom.db.models import EventKind, RoomEvent, utcnow
from chatroom.db.session import Database
from chatroom.resolvers import access
from chatroom.resolvers.auth import Caller, authenticate

# How often an idle subscription re-checks its token, and a waiter refreshes its role's
# lastSeenAt (the sweeper takes three missed refreshes for a dead process).
PRESENCE_INTERVAL = 15.0

T = TypeVar("T")
Work = Callable[[AsyncSession, Caller], Awaitable[T]]


@dataclass(frozen=True)
class Line:
    """One subscription's connection to this process: the database, the hub that wakes it,
    the rooms' shared feeds, the caller's bearer token, and `seen`, told who the caller is
    (the request log)."""

    db: Database
    hub: Hub
    feeds: FeedCache
    token: str | None
    seen: Callable[[Caller], Caller]


class Watch:
    """The caller of one live subscription, woken through `wake` (already subscribed to the
    room, so nothing committed after the first read slips past)."""

    def __init__(self, line: Line, wake: Subscriber) -> None:
        self._line = line
        self.wake = wake
        self._caller: Caller | None = None

    @property
    def caller(self) -> Caller:
        assert self._caller is not None, "start() first"
        return self._caller

    async def start(self, work: Work[T], *, write: bool) -> T:
        """Authenticate and do the subscription's first work in one transaction (a writing
        one, or a short read), and from now on wake on a revocation of this session (the next
        check then refuses the token). Not a mutation: no rate-limit token is spent."""
        begin = self._line.db.transaction if write else self._line.db.read
        async with begin() as tx:
            self._caller = self._line.seen(await authenticate(tx, self._line.token))
            self._line.hub.also_wake_on(self.wake, self._caller.session_id)
            return await work(tx, self._caller)

    async def idle(self) -> None:
        """Wait for a wake-up, at most until the next presence interval or the token's expiry;
        then re-authenticate if the session may have been revoked or has expired."""
        left = (self.caller.expires_at - utcnow()).total_seconds()
        await self.wake.wait(max(0.05, min(PRESENCE_INTERVAL, left + 0.05)))
        if self.wake.recheck or utcnow() >= self.caller.expires_at:
            self.wake.recheck = False
            async with self._line.db.read() as tx:
                self._caller = self._line.seen(await authenticate(tx, self._line.token))

    async def check_access(
        self, chatroom_id: str, events: Sequence[RoomEvent], *, steer: bool
    ) -> None:
        """After a ROOM_UPDATED event, may the caller still see (or steer) the room? Asked
        once per (room, caller's identity, steer, event) for all this process's subscriptions
        (ACCESS), so one rename costs one read, not one per subscriber."""
        changed = [e.seq for e in events if e.kind == EventKind.ROOM_UPDATED]
        if not changed:
            return
        caller = self.caller

        async def ask() -> None:
            async with self._line.db.read() as tx:
                await access.load_room(tx, caller, chatroom_id, lock=False, steer=steer)

        who = (caller.user_id, caller.scope_chatroom_id, caller.scope_role)
        await ACCESS.ask((chatroom_id, who, steer, max(changed)), ask)


class AccessChecks:
    """Answers to "may this caller see (or steer) this room, as of this ROOM_UPDATED event",
    shared by every subscription that asks the same: the answer depends only on the room, the
    caller's identity (user, and an agent token's scope) and the state after the event, and
    any read after the event sees that state. Only successes are shared: a subscriber that
    finds a refusal asks again itself, so each refusal is its own error."""

    MAX = 4096

    def __init__(self) -> None:
        self._asked: OrderedDict[Hashable, asyncio.Future[None]] = OrderedDict()

    async def ask(self, key: Hashable, ask: Callable[[], Awaitable[None]]) -> None:
        found = self._asked.get(key)
        if found is None:
            # Its own task: the subscription that started it leaving does not cancel it.
            pending = asyncio.ensure_future(ask())
            self._asked[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
            if len(self._asked) > self.MAX:
                self._asked.popitem(last=False)
            await asyncio.shield(pending)
            return
        try:
            await asyncio.shield(found)
        except Exception:
            await ask()

    def _settle(self, key: Hashable, done: asyncio.Future[None]) -> None:
        if (done.cancelled() or done.exception() is not None) and self._asked.get(key) is done:
            del self._asked[key]


ACCESS = AccessChecks()
