"""The process's cache of authenticated sessions: token hash -> the caller it resolved to.

Serving a request from here saves its authentication query. It is safe only while this process
hears every revocation, so:

- a revocation ("session:<id>" on the notify channel) forgets the session before its
  subscribers are woken; the revoking process also forgets it in the revoking transaction;
- the cache is used only while the process has a LISTEN connection and every one is up: each
  Listener registers itself offline until connected, and a lost connection (notifications may
  be lost) empties the cache and bypasses it until the listener is back; a process with no
  listener (a script, a test calling resolvers) never uses it;
- a lookup that raced a revocation (read the row before the revocation, stores it after) is
  not stored: every forget moves a generation counter, and `put` refuses an entry read under an
  older generation;
- entries also age out (MAX_AGE), a bound on anything this reasoning missed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_ENTRIES = 10_000
MAX_AGE = 60.0  # seconds


@dataclass(frozen=True)
class _Entry(Generic[V]):
    session_id: uuid.UUID
    value: V
    stored_at: float


class SessionCache(Generic[V]):
    def __init__(self) -> None:
        self._by_hash: dict[str, _Entry[V]] = {}
        self._hash_of: dict[uuid.UUID, str] = {}
        self._listeners: dict[object, bool] = {}  # listener -> hearing notifications now
        self.generation = 0

    @property
    def usable(self) -> bool:
        return bool(self._listeners) and all(self._listeners.values())

    def get(self, token_hash: str) -> V | None:
        if not self.usable:
            return None
        entry = self._by_hash.get(token_hash)
        if entry is None:
            return None
        if time.monotonic() - entry.stored_at > MAX_AGE:
            self._drop(token_hash)
            return None
        return entry.value

    def put(self, token_hash: str, session_id: uuid.UUID, value: V, generation: int) -> None:
        """Store what a lookup started under `generation` found (refused if anything was
        forgotten since: the lookup may have read a row a revocation has changed)."""
        if not self.usable or generation != self.generation:
            return
        if len(self._by_hash) >= MAX_ENTRIES:
            self._drop(next(iter(self._by_hash)))
        self._by_hash[token_hash] = _Entry(session_id, value, time.monotonic())
        self._hash_of[session_id] = token_hash

    def forget(self, session_id: uuid.UUID) -> None:
        self.generation += 1
        token_hash = self._hash_of.pop(session_id, None)
        if token_hash is not None:
            self._by_hash.pop(token_hash, None)

    def clear(self) -> None:
        self.generation += 1
        self._by_hash.clear()
        self._hash_of.clear()

    # --- the listeners that keep it honest ---------------------------------------------------

    def offline(self, listener: object) -> None:
        """A listener is not (or no longer) hearing revocations: empty and bypass the cache."""
        self._listeners[listener] = False
        self.clear()

    def online(self, listener: object) -> None:
        """A listener is connected again (it re-reads what it missed): start afresh."""
        self.clear()
        self._listeners[listener] = True

    def detach(self, listener: object) -> None:
        """A listener stopped for good (its app shut down): it no longer gates the cache."""
        self._listeners.pop(listener, None)
        self.clear()

    def _drop(self, token_hash: str) -> None:
        entry = self._by_hash.pop(token_hash, None)
        if entry is not None:
            self._hash_of.pop(entry.session_id, None)


# One per process: every app in it shares the revocations its listeners hear.
SESSIONS: SessionCache[object] = SessionCache()
