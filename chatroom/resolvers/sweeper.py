"""The background sweep every server process runs (SPEC §2.7): silent agents' tasks go back to
PENDING even when nobody calls, and roles whose only waiter died with its server process (it
stopped refreshing lastSeenAt) are idled. Each room is its own transaction, so one room's
failure or lock wait never holds up the others; a failed round is logged and retried."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from chatroom.db.session import Database
from chatroom.resolvers import delivery

log = logging.getLogger("chatroom.sweeper")


async def sweep_once(db: Database, stale_after: timedelta) -> None:
    async with db.read() as tx:
        rooms = await delivery.rooms_with_lapsed_leases(tx)
        stale = await delivery.stale_waiters(tx, silent_for=stale_after)
    for room_id in rooms:
        async with db.transaction() as tx:
            await delivery.expire_lease_in_room(tx, room_id)
    for room_id, role in stale:
        async with db.transaction() as tx:
            await delivery.drop_stale_waiter(tx, room_id, role, stale_after)


async def sweep_forever(db: Database, interval: float, stale_after: timedelta) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_once(db, stale_after)
        except Exception:  # keep sweeping; the next round retries
            log.exception("lease sweep failed")
