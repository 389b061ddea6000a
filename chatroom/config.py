"""Settings read from the environment, shared by every layer. Each default is documented in
docs/configuration.md; change them with the environment variable named beside each."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache


@dataclass(frozen=True)
class Settings:
    # How long a claimed task stays with its role without any call from that role.
    task_lease: timedelta  # CHATROOM_TASK_LEASE_SECONDS (4 hours)
    # How often the server returns lapsed leases to PENDING even when nobody calls.
    lease_sweep_interval: timedelta  # CHATROOM_LEASE_SWEEP_SECONDS (30)
    max_query_depth: int  # CHATROOM_MAX_QUERY_DEPTH (10)
    max_aliases: int  # CHATROOM_MAX_ALIASES (30)
    max_query_tokens: int  # CHATROOM_MAX_QUERY_TOKENS (5000)
    max_body_bytes: int  # CHATROOM_MAX_BODY_BYTES (1 MiB)
    max_ws_message_bytes: int  # CHATROOM_MAX_WS_MESSAGE_BYTES (1 MiB)
    max_subscriptions_per_connection: int  # CHATROOM_MAX_SUBSCRIPTIONS_PER_CONNECTION (20)
    max_connections_per_token: int  # CHATROOM_MAX_CONNECTIONS_PER_TOKEN (50)
    mutations_per_second: float  # CHATROOM_MUTATIONS_PER_SECOND (50; 0 turns it off)
    mutation_burst: int  # CHATROOM_MUTATION_BURST (200)
    # Extra origins allowed to open websockets (same-origin is always allowed).
    allowed_origins: tuple[str, ...]  # CHATROOM_ALLOWED_ORIGINS (none)
    # Origins allowed by CORS for HTTP; CORS is off unless set.
    cors_origins: tuple[str, ...]  # CHATROOM_CORS_ORIGINS (none)
    # /metrics in Prometheus format; off unless set. The token guards it (see docs/operations.md).
    metrics: bool  # CHATROOM_METRICS (off; 1 turns it on)
    metrics_token: str | None  # CHATROOM_METRICS_TOKEN (none: loopback, unproxied requests only)
    # Which documents run: off, allow (default) or only (chatroom/schema/trusted_documents.py).
    trusted_documents: str  # CHATROOM_TRUSTED_DOCUMENTS (allow)


def _seconds(name: str, default: float) -> timedelta:
    return timedelta(seconds=_number(name, default))


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings(
        task_lease=_seconds("CHATROOM_TASK_LEASE_SECONDS", 4 * 3600),
        lease_sweep_interval=_seconds("CHATROOM_LEASE_SWEEP_SECONDS", 30),
        max_query_depth=int(_number("CHATROOM_MAX_QUERY_DEPTH", 10)),
        max_aliases=int(_number("CHATROOM_MAX_ALIASES", 30)),
        max_query_tokens=int(_number("CHATROOM_MAX_QUERY_TOKENS", 5000)),
        max_body_bytes=int(_number("CHATROOM_MAX_BODY_BYTES", 1 << 20)),
        max_ws_message_bytes=int(_number("CHATROOM_MAX_WS_MESSAGE_BYTES", 1 << 20)),
        max_subscriptions_per_connection=int(
            _number("CHATROOM_MAX_SUBSCRIPTIONS_PER_CONNECTION", 20)
        ),
        max_connections_per_token=int(_number("CHATROOM_MAX_CONNECTIONS_PER_TOKEN", 50)),
        mutations_per_second=_number("CHATROOM_MUTATIONS_PER_SECOND", 50),
        mutation_burst=int(_number("CHATROOM_MUTATION_BURST", 200)),
        allowed_origins=_list("CHATROOM_ALLOWED_ORIGINS"),
        cors_origins=_list("CHATROOM_CORS_ORIGINS"),
        metrics=os.environ.get("CHATROOM_METRICS", "") not in ("", "0"),
        metrics_token=os.environ.get("CHATROOM_METRICS_TOKEN") or None,
        trusted_documents=os.environ.get("CHATROOM_TRUSTED_DOCUMENTS", "").strip().lower()
        or "allow",
    )
