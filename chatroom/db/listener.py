"""One LISTEN connection per server process, fanning wake-ups out to subscribers by room.

A notification only *wakes* a subscriber; the subscriber then re-reads the table from its own
cursor. So a lost notification costs latency, never an event: after any loss of the LISTEN
connection we reconnect with backoff and wake everyone, and a slow periodic wake-up is the
safety net for anything else. Each subscriber's inbox is a one-slot "re-read" flag (a bounded
queue where "full" means "re-read", never "drop"), so a slow subscriber costs no memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator

import asyncpg

from chatroom.db.notify import NOTIFY_CHANNEL, Topic, parse
from chatroom.db.session import to_libpq_url
from chatroom.db.session_cache import SESSIONS

log = logging.getLogger("chatroom.listener")


class Subscriber:
    """A wake-up flag plus the newest seq announced for its room (a hint, never trusted alone)."""

    def __init__(self, room_id: uuid.UUID) -> None:
        self.room_id = room_id
        self.also: set[uuid.UUID] = set()
        self.announced_seq = 0
        # Set when woken through an `also` id (its session was revoked): re-authenticate.
        self.recheck = False
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    def wake(self, seq: int | None = None) -> None:
        if seq is not None and seq > self.announced_seq:
            self.announced_seq = seq
        self._wake.set()

    async def wait(self, at_most: float) -> None:
        """Return when woken, or after `at_most` seconds at the latest (the caller then
        re-reads). The deadline is one timer that outlives a wake-up: a wait whose deadline
        is later than the pending timer's keeps it (and may return at that earlier time, an
        early re-read that costs nothing). A timeout context per wait scheduled and
        cancelled a timer for every subscriber at every event, a tenth of a 1,000-subscriber
        fan-out's CPU. A plain await of the event, not wait_for: on Python 3.11 wait_for can
        swallow a cancellation that lands in the same step as the wake-up."""
        if not self._wake.is_set():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + at_most
            if self._timer is None or self._timer.when() > deadline:
                self.close()
                self._timer = loop.call_at(deadline, self._expired)
            await self._wake.wait()
        self._wake.clear()

    def _expired(self) -> None:
        self._timer = None
        self._wake.set()

    def close(self) -> None:
        """Cancel the pending deadline (the subscriber is done)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Hub:
    """Subscribers by room, in this process."""

    def __init__(self) -> None:
        self._rooms: dict[uuid.UUID, set[Subscriber]] = defaultdict(set)
        self._announced: dict[uuid.UUID, int] = {}
        # Called with an id when its last subscriber leaves (to drop per-room caches).
        self.on_unwatched: Callable[[uuid.UUID], None] = lambda _key: None

    @contextlib.contextmanager
    def subscribe(self, room_id: uuid.UUID) -> Iterator[Subscriber]:
        """Wake-ups for a room (or any other id that is announced: a login, a session)."""
        subscriber = Subscriber(room_id)
        self._add(room_id, subscriber)
        try:
            yield subscriber
        finally:
            subscriber.close()
            for key in (room_id, *subscriber.also):
                self._remove(key, subscriber)

    def also_wake_on(self, subscriber: Subscriber, key: uuid.UUID) -> None:
        """Wake this subscriber for another id too (its session: revocation ends it at once)."""
        subscriber.also.add(key)
        self._add(key, subscriber)

    def _add(self, key: uuid.UUID, subscriber: Subscriber) -> None:
        self._rooms[key].add(subscriber)

    def _remove(self, key: uuid.UUID, subscriber: Subscriber) -> None:
        members = self._rooms.get(key)
        if members is not None:
            members.discard(subscriber)
            if not members:
                del self._rooms[key]
                self._announced.pop(key, None)
                self.on_unwatched(key)

    def publish(self, key: uuid.UUID, seq: int | None) -> None:
        if seq is not None and key in self._rooms:
            self._announced[key] = max(seq, self._announced.get(key, 0))
        for subscriber in self._rooms.get(key, ()):
            if key != subscriber.room_id:
                subscriber.recheck = True
            subscriber.wake(seq if key == subscriber.room_id else None)

    def rooms(self) -> list[uuid.UUID]:
        return list(self._rooms)

    def catch_up(self, latest: dict[uuid.UUID, int]) -> int:
        """Wake the rooms whose log moved past what was announced here (lost notifications)."""
        woken = 0
        for room_id, seq in latest.items():
            if seq > self._announced.get(room_id, 0):
                self.publish(room_id, seq)
                woken += 1
        return woken

    def wake_all(self) -> None:
        for members in self._rooms.values():
            for subscriber in members:
                subscriber.wake()

    @property
    def subscriber_count(self) -> int:
        return len({s for members in self._rooms.values() for s in members})

    @property
    def room_count(self) -> int:
        return len(self._rooms)


class Listener:
    """Keeps the LISTEN connection alive for as long as `run()` runs."""

    def __init__(
        self,
        database_url: str,
        hub: Hub,
        *,
        safety_interval: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._dsn = to_libpq_url(database_url)
        self._hub = hub
        self._safety_interval = safety_interval
        self._max_backoff = max_backoff
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.backend_pid: int | None = None
        SESSIONS.offline(self)  # no cached authentication until this process hears revocations

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = parse(payload)
        except ValueError:
            log.warning("ignored a malformed notification")
            return
        if notice.topic == Topic.SESSION:
            SESSIONS.forget(notice.id)  # before the wake-up: its re-check reads the row
        self._hub.publish(notice.id, notice.seq)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            SESSIONS.detach(self)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning(
                    "LISTEN connection failed (%s); retry in %.2fs", type(exc).__name__, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                SESSIONS.online(self)
                self.backend_pid = conn.get_server_pid()
                backoff = 0.05
                self.connected.set()
                # Anything committed while we were not listening is found by re-reading:
                # rooms whose log moved are announced with their new head, then everyone
                # (logins, sessions) re-checks.
                await self._catch_up(conn)
                self._hub.wake_all()
                while not lost.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._safety_interval):
                            await lost.wait()
                    if not lost.is_set():
                        await self._catch_up(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN connection lost (%s)", type(exc).__name__)
            finally:
                SESSIONS.offline(self)
                self.connected.clear()
                await _close_quietly(conn)
            self.reconnects += 1
            log.warning("LISTEN connection lost; reconnecting")

    async def _catch_up(self, conn: asyncpg.Connection) -> None:
        """The safety net: one query for every watched room, waking only rooms that moved."""
        rooms = self._hub.rooms()
        if not rooms:
            return
        rows = await conn.fetch(
            "SELECT id, last_event_seq FROM chatrooms WHERE id = ANY($1::uuid[])", rooms
        )
        if woken := self._hub.catch_up({r["id"]: r["last_event_seq"] for r in rows}):
            log.info("safety net woke %d room(s) whose notifications were missed", woken)


async def _close_quietly(conn: asyncpg.Connection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), 2)
