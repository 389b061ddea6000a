"""Subscription root: work is pushed the moment it commits.

Each generator registers with this process's hub BEFORE its first read, so nothing committed
after that read can slip past: either the read saw it, or its notification wakes us. Every
subscription checks the caller's token when it starts, at the token's expiry and the moment
its session is revoked (chatroom.resolvers.live), and clean-up always runs. A taskAvailable
waiter's whole life is chatroom.resolvers.waiting.TaskWaiter; its field only adapts it."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextlib import aclosing

import strawberry

from chatroom.db.feed import BATCH
from chatroom.db.models import RoomEvent
from chatroom.resolvers import delivery, logins, validation
from chatroom.resolvers.live import Line, Watch
from chatroom.resolvers.logins import LoginStatus
from chatroom.resolvers.waiting import TaskWaiter
from chatroom.schema import types as t
from chatroom.schema.agents import AgentsSubscription
from chatroom.schema.context import AppInfo

# Expiry needs no notification: a pending login re-checks itself this often.
LOGIN_RECHECK = 1.0


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


def _line(info: AppInfo) -> Line:
    """What a live subscription takes from its connection's context."""
    c = info.context
    return Line(db=c.db, hub=c.hub, feeds=c.feeds, token=c.token, seen=c.seen)


@strawberry.type
class Subscription(AgentsSubscription):
    @strawberry.subscription(
        description="The room's change log from a cursor: replays what was missed, then follows "
        "live. Resume with the last seq you saw; without afterSeq it starts live."
    )
    async def room_events(
        self, info: AppInfo, chatroom_id: strawberry.ID, after_seq: int | None = None
    ) -> AsyncGenerator[t.RoomEvent, None]:
        room_uuid = validation.entity_id(chatroom_id, kind="chatroom")
        line = _line(info)
        with info.context.subscription_slot(), line.hub.subscribe(room_uuid) as wake:
            watch = Watch(line, wake)
            room_id, cursor = await watch.start(
                lambda tx, caller: delivery.open_room_feed(
                    tx, caller, chatroom_id=chatroom_id, after_seq=after_seq
                ),
                write=False,
            )
            # Reads are shared by the room's subscribers here (FeedCache); access is checked
            # at the start and again whenever the session may have changed.
            feed = line.feeds.feed(room_id)
            while True:
                events = await feed.after(cursor, wake.announced_seq)
                await watch.check_access(chatroom_id, events, steer=False)
                for event in events:
                    cursor = event.seq
                    yield EVENT_VIEWS.of(event)
                if len(events) < BATCH:
                    await watch.idle()

    @strawberry.subscription(
        description="Wait for work as a role: marks it WAITING, delivers a task it can claim "
        "now, then each new one. One waiter per role: a newer one ends this one (SUPERSEDED)."
    )
    async def task_available(
        self, info: AppInfo, chatroom_id: strawberry.ID, role: str
    ) -> AsyncGenerator[t.TaskDelivery, None]:
        waiter = TaskWaiter(_line(info), chatroom_id=chatroom_id, role=role)
        with info.context.subscription_slot():
            async with aclosing(waiter.deliveries()) as deliveries:
                async for item in deliveries:
                    yield t.TaskDelivery.of(item)

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
