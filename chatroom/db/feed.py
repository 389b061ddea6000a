"""Shared reads of a room's event log for its live subscribers, in this process.

When an event is announced, every subscriber of the room wakes and asks for the events after
its own cursor. Without sharing, 1,000 subscribers would run 1,000 identical queries; here
the first asker loads the new events once (the others wait for that load) and everyone is
served from a small per-room window of recent events. A cursor older than the window is read
from the table directly, so a slow or resuming subscriber still gets every event."""

from __future__ import annotations

import asyncio
import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import RoomEvent
from chatroom.db.session import Database

WINDOW = 256
BATCH = 500


async def read_events(tx: AsyncSession, room_id: uuid.UUID, after_seq: int) -> list[RoomEvent]:
    rows = await tx.exec(
        select(RoomEvent)
        .where(RoomEvent.chatroom_id == room_id, RoomEvent.seq > after_seq)
        .order_by(col(RoomEvent.seq))
        .limit(BATCH)
    )
    return list(rows.all())


async def read_newest(tx: AsyncSession, room_id: uuid.UUID, count: int) -> list[RoomEvent]:
    rows = await tx.exec(
        select(RoomEvent)
        .where(RoomEvent.chatroom_id == room_id)
        .order_by(col(RoomEvent.seq).desc())
        .limit(count)
    )
    return list(reversed(rows.all()))


class RoomFeed:
    """The newest events of one room, loaded once per announcement for every subscriber.

    Invariant: every event with seq <= `_head` has been read, and `_window` holds the newest
    of them (consecutive seqs ending at `_head`). Seqs are gapless and commit in order (each
    is assigned under the room's row lock), so reading "after `_head`" never skips one."""

    def __init__(self, room_id: uuid.UUID, db: Database) -> None:
        self.room_id = room_id
        self._db = db
        self._window: list[RoomEvent] = []
        self._head: int | None = None  # None: nothing read yet
        self._lock = asyncio.Lock()

    async def after(self, seq: int, announced: int) -> list[RoomEvent]:
        """Events after `seq` (at most BATCH), given the log is known to reach `announced`."""
        async with self._lock:  # one load serves everyone who woke for the same event
            if self._head is None or self._head < announced:
                await self._load()
            if self._covers(seq):
                return [e for e in self._window if e.seq > seq][:BATCH]
        # Older than the window (a resuming or slow subscriber): read it directly.
        async with self._db.read() as tx:
            return await read_events(tx, self.room_id, seq)

    def _covers(self, seq: int) -> bool:
        assert self._head is not None
        if seq >= self._head:
            return True
        return bool(self._window) and seq >= self._window[0].seq - 1

    async def _load(self) -> None:
        """Read up to the log's end: the first time only its newest WINDOW events (an older
        cursor is served by direct reads), then everything after the head, batch by batch."""
        async with self._db.read() as tx:
            if self._head is None:
                newest = await read_newest(tx, self.room_id, WINDOW)
                self._window = newest
                self._head = newest[-1].seq if newest else 0
                return
            while True:
                fresh = await read_events(tx, self.room_id, self._head)
                self._window.extend(fresh)
                del self._window[:-WINDOW]
                if fresh:
                    self._head = fresh[-1].seq
                if len(fresh) < BATCH:
                    return


class FeedCache:
    """One RoomFeed per room that has live subscribers in this process."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._feeds: dict[uuid.UUID, RoomFeed] = {}

    def feed(self, room_id: uuid.UUID) -> RoomFeed:
        found = self._feeds.get(room_id)
        if found is None:
            found = self._feeds[room_id] = RoomFeed(room_id, self._db)
        return found

    def forget(self, room_id: uuid.UUID) -> None:
        self._feeds.pop(room_id, None)

    def __len__(self) -> int:
        return len(self._feeds)
