"""Shared reads of a room's event log for its live subscribers, in this process.

When an event is announced, every subscriber of the room wakes and asks for the events after
its own cursor. Without sharing, 1,000 subscribers would run 1,000 identical queries; here
the first asker loads the new events once (the others wait for that load) and everyone is
served from a small per-room window of recent events. A cursor older than the window is read
from the table directly, so a slow or resuming subscriber still gets every event."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.db import driver, rows
from chatroom.db.models import RoomEvent
from chatroom.db.session import Database

WINDOW = 256
BATCH = 500

# The feed's reads, each one statement outside a transaction (driver.fetch_alone).
_COLUMNS = tuple(c.name for c in RoomEvent.__table__.columns)  # type: ignore[attr-defined]
_AFTER = (
    f"SELECT {', '.join(_COLUMNS)} FROM room_events "
    "WHERE chatroom_id = $1::UUID AND seq > $2::BIGINT ORDER BY seq LIMIT $3::INTEGER"
)
_NEWEST = (
    f"SELECT {', '.join(_COLUMNS)} FROM room_events "
    "WHERE chatroom_id = $1::UUID ORDER BY seq DESC LIMIT $2::INTEGER"
)


def _events(found: list[Any]) -> list[RoomEvent]:
    return [rows.build(RoomEvent, dict(zip(_COLUMNS, r, strict=True))) for r in found]


async def read_events(engine: AsyncEngine, room_id: uuid.UUID, after_seq: int) -> list[RoomEvent]:
    return _events(await driver.fetch_alone(engine, _AFTER, room_id, after_seq, BATCH))


async def read_newest(engine: AsyncEngine, room_id: uuid.UUID, count: int) -> list[RoomEvent]:
    return list(reversed(_events(await driver.fetch_alone(engine, _NEWEST, room_id, count))))


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
                # The window's seqs are consecutive: the events after `seq` start at an offset
                # (a scan per subscriber was a tenth of a 1,000-subscriber fan-out).
                start = max(0, seq - self._window[0].seq + 1) if self._window else 0
                return self._window[start : start + BATCH]
        # Older than the window (a resuming or slow subscriber): read it directly.
        return await read_events(self._db.engine, self.room_id, seq)

    def committed(self, events: list[RoomEvent]) -> bool:
        """Events of this room that this process has just committed, in seq order: taken into
        the window when they follow its head, so this process's subscribers are served
        without waiting for the notification's round trip through PostgreSQL and a read.
        Left for the next read (False) when they do not follow (another process's events came
        between) or a read is under way (it will return them itself)."""
        if self._head is None or self._lock.locked() or events[0].seq != self._head + 1:
            return False
        self._window.extend(events)
        del self._window[:-WINDOW]
        self._head = events[-1].seq
        return True

    def _covers(self, seq: int) -> bool:
        assert self._head is not None
        if seq >= self._head:
            return True
        return bool(self._window) and seq >= self._window[0].seq - 1

    async def _load(self) -> None:
        """Read up to the log's end: the first time only its newest WINDOW events (an older
        cursor is served by direct reads), then everything after the head, batch by batch
        (each batch its own statement: seqs commit in order, so reading after the head is
        consistent without one snapshot for all)."""
        engine = self._db.engine
        if self._head is None:
            newest = await read_newest(engine, self.room_id, WINDOW)
            self._window = newest
            self._head = newest[-1].seq if newest else 0
            return
        while True:
            fresh = await read_events(engine, self.room_id, self._head)
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

    def committed(self, events: list[RoomEvent]) -> dict[uuid.UUID, int]:
        """Give each room's feed the events this process has just committed; returns each
        room's newest seq, for the hub to wake its subscribers with."""
        by_room: dict[uuid.UUID, list[RoomEvent]] = {}
        for event in sorted(events, key=lambda e: (str(e.chatroom_id), e.seq)):
            by_room.setdefault(event.chatroom_id, []).append(event)
        for room_id, room_events in by_room.items():
            feed = self._feeds.get(room_id)
            if feed is not None:
                feed.committed(room_events)
        return {room_id: room_events[-1].seq for room_id, room_events in by_room.items()}

    def forget(self, room_id: uuid.UUID) -> None:
        self._feeds.pop(room_id, None)

    def __len__(self) -> int:
        return len(self._feeds)
