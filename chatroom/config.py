"""Settings read from the environment, shared by every layer. Defaults are documented in docs/."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache


@dataclass(frozen=True)
class Settings:
    # How long a claimed task stays with its role without any call from that role.
    task_lease: timedelta
    # How often the server returns lapsed leases to PENDING even when nobody calls.
    lease_sweep_interval: timedelta


def _seconds(name: str, default: float) -> timedelta:
    raw = os.environ.get(name)
    return timedelta(seconds=float(raw) if raw else default)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings(
        task_lease=_seconds("CHATROOM_TASK_LEASE_SECONDS", 4 * 3600),
        lease_sweep_interval=_seconds("CHATROOM_LEASE_SWEEP_SECONDS", 30),
    )
