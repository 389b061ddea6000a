"""Prometheus metrics (SPEC §13): off unless CHATROOM_METRICS=1, served at /metrics.

Request counts, latency and errors are counted by a schema extension around each operation, by
operation name (the documents our clients send are all named; others count as "anonymous").
Live state (open subscriptions, watched rooms, listener reconnects, pool use) is read from the
app at scrape time, so the hot path carries no bookkeeping for it.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from strawberry.extensions import SchemaExtension

from chatroom.config import settings
from chatroom.schema.request_log import operation_type

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# One registry per process (the app is one per process); not the library's global one, so
# nothing else in the process leaks into our exposition.
REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "chatroom_graphql_operations",
    "GraphQL operations, by operation name and type.",
    ["operation", "type"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "chatroom_graphql_operation_seconds",
    "Time to answer a query or mutation (parse, validate, execute), by operation name.",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
ERRORS = Counter(
    "chatroom_graphql_errors",
    "Errors in GraphQL results, by error code (extensions.code).",
    ["code"],
    registry=REGISTRY,
)


class OperationMetrics(SchemaExtension):
    """Counts each operation; listed first so it wraps the error-coding extension and sees the
    final codes."""

    def on_operation(self) -> Iterator[None]:
        if not settings().metrics:
            yield
            return
        started = time.perf_counter()
        yield
        context = self.execution_context
        name = context.operation_name or "anonymous"
        kind = operation_type(context) or "unknown"
        REQUESTS.labels(name, kind).inc()
        if kind != "subscription":  # a subscription's operation lasts as long as it is open
            LATENCY.labels(name).observe(time.perf_counter() - started)
        result = context.result
        for error in getattr(result, "errors", None) or []:
            code = (error.extensions or {}).get("code", "INTERNAL")
            ERRORS.labels(str(code)).inc()


class AppState(Collector):
    """Gauges read from the running app when scraped."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state
        yield GaugeMetricFamily(
            "chatroom_open_subscriptions", "Open subscriptions.", value=state.hub.subscriber_count
        )
        yield GaugeMetricFamily(
            "chatroom_watched_rooms", "Rooms with a subscriber.", value=state.hub.room_count
        )
        yield CounterMetricFamily(
            "chatroom_listener_reconnects",
            "Times the LISTEN connection was re-established.",
            value=state.listener.reconnects,
        )
        pool = state.db.engine.pool
        yield GaugeMetricFamily(
            "chatroom_db_pool_checked_out", "Pooled connections in use.", value=pool.checkedout()
        )
        yield GaugeMetricFamily("chatroom_db_pool_size", "Pool size.", value=pool.size())


def watch_app(state: Any) -> None:
    """Report this app's live state (once per process: the registry is the process's)."""
    if not getattr(REGISTRY, "_chatroom_app_state", False):
        REGISTRY.register(AppState(state))
        REGISTRY._chatroom_app_state = True  # type: ignore[attr-defined]


def _local_unproxied(request: Request) -> bool:
    """Arrived on a loopback address and not through a proxy (which would make it public)."""
    server = request.scope.get("server") or ("", 0)
    try:
        loopback = ipaddress.ip_address(server[0]).is_loopback
    except ValueError:
        loopback = False
    proxied = any(h in request.headers for h in ("forwarded", "x-forwarded-for", "x-real-ip"))
    return loopback and not proxied


async def metrics_endpoint(request: Request) -> Response:
    token = settings().metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return PlainTextResponse(
                "metrics need `Authorization: Bearer <CHATROOM_METRICS_TOKEN>`\n", status_code=401
            )
    elif not _local_unproxied(request):
        return PlainTextResponse(
            "metrics beyond loopback need CHATROOM_METRICS_TOKEN set on the server\n",
            status_code=403,
        )
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE)
