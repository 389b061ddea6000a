"""Subscription root: work is pushed the moment it commits.

Each generator registers with this process's hub BEFORE its first read, so nothing committed
after that read can slip past: either the read saw it, or its notification wakes us. Every
subscription checks the caller's token when it starts, at the token's expiry and the moment
its session is revoked (the hub wakes it), and clean-up always runs."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import strawberry

from chatroom.db.feed import BATCH
from chatroom.db.listener import Subscriber
from chatroom.db.models import EventKind, Message, RoomEvent, utcnow
from chatroom.resolvers import access, delivery, logins, validation
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.logins import LoginStatus
from chatroom.schema import types as t
from chatroom.schema.context import AppInfo
from chatroom.schema.session import current_caller, in_read, in_transaction

log = logging.getLogger("chatroom.subscriptions")

# How often an open waiter refreshes the role's lastSeenAt (and re-checks its token).
PRESENCE_INTERVAL = 15.0
# Expiry needs no notification: a pending login re-checks itself this often.
LOGIN_RECHECK = 1.0
FINAL_KINDS = (delivery.DeliveryKind.SUPERSEDED, delivery.DeliveryKind.INTERRUPT)

T = TypeVar("T")


class EventViews:
    """The GraphQL object of each event, built once for all the room's subscribers in this
    process (the feed already reads each event once for all of them). Events never change
    once committed, so (room, seq) names one object for good; the newest MAX are kept."""

    MAX = 4096

    def __init__(self) -> None:
        self._views: OrderedDict[tuple[uuid.UUID, int], t.RoomEvent] = OrderedDict()

    def of(self, row: RoomEvent) -> t.RoomEvent:
        key = (row.chatroom_id, row.seq)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = t.RoomEvent.of(row)
            if len(self._views) > self.MAX:
                self._views.popitem(last=False)
        return view


EVENT_VIEWS = EventViews()


def _until_recheck(caller: Caller) -> float:
    """Sleep at most until the next presence touch, or the token's expiry if sooner."""
    left = (caller.expires_at - utcnow()).total_seconds()
    return max(0.05, min(PRESENCE_INTERVAL, left + 0.05))


async def _recheck(info: AppInfo, wake: Subscriber, caller: Caller) -> Caller:
    """Re-authenticate after a possible revocation or at expiry (raises UNAUTHENTICATED)."""
    if wake.recheck or utcnow() >= caller.expires_at:
        wake.recheck = False
        return await current_caller(info)
    return caller


async def _watch(info: AppInfo, wake: Subscriber) -> Caller:
    """Authenticate, and let a revocation of this session wake the subscription at once (the
    next read then refuses the token and the subscription ends)."""
    caller = await current_caller(info)
    info.context.hub.also_wake_on(wake, caller.session_id)
    return caller


async def _check_access(
    info: AppInfo, chatroom_id: str, events: list[RoomEvent], *, steer: bool
) -> None:
    """Who may see or act in a room changes with a ROOM_UPDATED event (a member removed or
    demoted, chatroom/resolvers/members.py): after one, ask again (raises NOT_FOUND or
    FORBIDDEN, which ends the subscription before it yields anything more)."""
    if any(e.kind == EventKind.ROOM_UPDATED for e in events):
        await in_read(
            info, lambda tx, c: access.load_room(tx, c, chatroom_id, lock=False, steer=steer)
        )


async def _shielded(work: Callable[[], Awaitable[T]]) -> T | None:
    """Clean-up that must finish even when the client vanished mid-await."""
    try:
        return await asyncio.shield(work())
    except Exception:
        log.exception("subscription clean-up failed")
        return None


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The room's change log from a cursor: replays what was missed, then follows "
        "live. Resume with the last seq you saw; without afterSeq it starts live."
    )
    async def room_events(
        self, info: AppInfo, chatroom_id: strawberry.ID, after_seq: int | None = None
    ) -> AsyncGenerator[t.RoomEvent, None]:
        room_uuid = validation.entity_id(chatroom_id, kind="chatroom")
        with info.context.subscription_slot(), info.context.hub.subscribe(room_uuid) as wake:
            caller = await _watch(info, wake)
            room_id, cursor = await in_read(
                info,
                lambda tx, c: delivery.open_room_feed(
                    tx, c, chatroom_id=chatroom_id, after_seq=after_seq
                ),
            )
            # Reads are shared by the room's subscribers here (FeedCache); access is checked
            # at the start and again whenever the session may have changed.
            feed = info.context.feeds.feed(room_id)
            while True:
                events = await feed.after(cursor, wake.announced_seq)
                await _check_access(info, chatroom_id, events, steer=False)
                for event in events:
                    cursor = event.seq
                    yield EVENT_VIEWS.of(event)
                if len(events) < BATCH:
                    await wake.wait(_until_recheck(caller))
                    caller = await _recheck(info, wake, caller)

    @strawberry.subscription(
        description="Wait for work as a role: marks it WAITING, delivers a task it can claim "
        "now, then each new one. One waiter per role: a newer one ends this one (SUPERSEDED)."
    )
    async def task_available(
        self, info: AppInfo, chatroom_id: strawberry.ID, role: str
    ) -> AsyncGenerator[t.TaskDelivery, None]:
        room_uuid = validation.entity_id(chatroom_id, kind="chatroom")
        db = info.context.db

        async def load_message(message_id: uuid.UUID) -> Message | None:
            async with db.read() as tx:
                return await tx.get(Message, message_id)

        with info.context.subscription_slot(), info.context.hub.subscribe(room_uuid) as wake:
            caller = await _watch(info, wake)
            waiter = await in_transaction(
                info,
                lambda tx, c: delivery.register_waiter(tx, c, chatroom_id=chatroom_id, role=role),
            )
            # From here on the room's log decides, read through the room's shared feed: a
            # wake-up costs this waiter no query of its own (chatroom.resolvers.delivery).
            feed = info.context.feeds.feed(waiter.room_id)
            touched = time.monotonic()
            try:
                items = await in_read(info, lambda tx, c: delivery.first_deliveries(tx, c, waiter))
                while True:
                    for item in items:
                        yield t.TaskDelivery.of(item)
                        if item.kind in FINAL_KINDS:
                            return
                    events = await feed.after(waiter.event_cursor, wake.announced_seq)
                    await _check_access(info, chatroom_id, events, steer=True)
                    if events:
                        items = await delivery.due_from_events(waiter, events, load_message)
                        continue
                    await wake.wait(_until_recheck(caller))
                    caller = await _recheck(info, wake, caller)
                    items = []
                    if time.monotonic() - touched >= PRESENCE_INTERVAL:
                        touched = time.monotonic()
                        async with db.transaction() as tx:
                            if not await delivery.touch_waiter(tx, waiter):
                                # Forgotten without a logged change (taken for a dead
                                # process's waiter): it is no longer the role's waiter.
                                items = [delivery.Delivery(delivery.DeliveryKind.SUPERSEDED)]
            finally:

                async def release() -> None:
                    async with db.transaction() as tx:
                        await delivery.release_waiter(tx, waiter)

                await _shielded(release)

    @strawberry.subscription(
        description="The CLI side of device login: yields the request's status until it ends. "
        "The first status after approval carries the token (once); then COLLECTED."
    )
    async def cli_login_status(
        self, info: AppInfo, request_id: strawberry.ID
    ) -> AsyncGenerator[t.CliLoginStatus, None]:
        db = info.context.db
        with (
            info.context.subscription_slot(),
            info.context.hub.subscribe(logins.login_id(request_id)) as wake,
        ):
            last: LoginStatus | None = None
            while True:
                async with db.transaction() as tx:
                    state = await logins.collect_cli_login(tx, request_id=request_id)
                if state.status != last or state.token:
                    last = state.status
                    yield t.CliLoginStatus(
                        status=state.status,
                        token=state.token,
                        user=t.User.of(state.user) if state.user else None,
                        expires_at=state.expires_at,
                    )
                if state.status not in (LoginStatus.PENDING, LoginStatus.APPROVED):
                    return
                await wake.wait(LOGIN_RECHECK)
