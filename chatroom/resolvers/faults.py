"""Named points inside multi-step mutations where tests force a failure, to prove the whole
transaction rolls back. Disarmed (the normal case) a checkpoint is one dict lookup."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_armed: set[str] = set()


class InjectedFault(RuntimeError):
    """Raised at an armed checkpoint; never caught by domain code."""


def checkpoint(name: str) -> None:
    if name in _armed:
        raise InjectedFault(f"fault injected at {name}")


@contextmanager
def armed(name: str) -> Iterator[None]:
    _armed.add(name)
    try:
        yield
    finally:
        _armed.discard(name)
