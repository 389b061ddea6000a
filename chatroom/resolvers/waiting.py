"""One taskAvailable waiter, its whole life: register, first deliveries, the room's log,
presence, supersede, access re-checks and release (chatroom.resolvers.delivery decides what
is due; this holds the life around it, so the GraphQL field only adapts what it yields).

Its database work: one transaction to authenticate, register and read what is due now; none
per wake-up (the room's shared feed reads the log once for every subscriber, and a task's
source message is usually logged beside it); one UPDATE per presence interval; one
transaction to release. A waiter is not a mutation: it spends no rate-limit token."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing

from chatroom.db.models import Message
from chatroom.resolvers import delivery, validation
from chatroom.resolvers.delivery import Delivery, DeliveryKind, Waiter
from chatroom.resolvers.live import PRESENCE_INTERVAL, Line, Watch

log = logging.getLogger("chatroom.subscriptions")

# After one of these the wait is over.
FINAL_KINDS = (DeliveryKind.SUPERSEDED, DeliveryKind.INTERRUPT)


class TaskWaiter:
    """Wait for work as `role` in a room: `deliveries()` yields each Delivery until a final
    one (SUPERSEDED or INTERRUPT), a refusal (coded error) or the consumer closing it; the
    role's waiter is released whichever way it ends."""

    def __init__(self, line: Line, *, chatroom_id: str, role: str) -> None:
        self._line = line
        self._chatroom_id = chatroom_id
        self._room_id = validation.entity_id(chatroom_id, kind="chatroom")
        self._role = role

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        # Subscribed to the room BEFORE the first read: whatever commits after it wakes us.
        with self._line.hub.subscribe(self._room_id) as wake:
            watch = Watch(self._line, wake)
            waiter, due = await watch.start(
                lambda tx, caller: delivery.register_waiter(
                    tx, caller, chatroom_id=self._chatroom_id, role=self._role
                ),
                write=True,
            )
            try:
                async with aclosing(self._follow(watch, waiter, due)) as items:
                    async for item in items:
                        yield item
                        if item.kind in FINAL_KINDS:
                            return
            finally:
                await self._release(waiter)

    async def _follow(
        self, watch: Watch, waiter: Waiter, due: list[Delivery]
    ) -> AsyncGenerator[Delivery, None]:
        """What is due now, then what the room's log makes due, until the caller stops."""
        feed = self._line.feeds.feed(waiter.room_id)
        touched = time.monotonic()
        while True:
            for item in due:
                yield item
            events = await feed.after(waiter.event_cursor, watch.wake.announced_seq)
            await watch.check_access(self._chatroom_id, events, steer=True)
            if events:
                due = await delivery.due_from_events(waiter, events, self._load_message)
                continue
            await watch.idle()
            due = []
            if time.monotonic() - touched >= PRESENCE_INTERVAL:
                touched = time.monotonic()
                if not await self._touch(waiter):
                    # Forgotten without a logged change (taken for a dead process's waiter):
                    # it is no longer the role's waiter.
                    due = [Delivery(DeliveryKind.SUPERSEDED)]

    async def _load_message(self, message_id: uuid.UUID) -> Message | None:
        async with self._line.db.read() as tx:
            return await tx.get(Message, message_id)

    async def _touch(self, waiter: Waiter) -> bool:
        async with self._line.db.transaction() as tx:
            return await delivery.touch_waiter(tx, waiter)

    async def _release(self, waiter: Waiter) -> None:
        """Must finish even when the client vanished mid-await (shielded from cancellation)."""

        async def release() -> None:
            async with self._line.db.transaction() as tx:
                await delivery.release_waiter(tx, waiter)

        try:
            await asyncio.shield(release())
        except Exception:
            log.exception("subscription clean-up failed")
