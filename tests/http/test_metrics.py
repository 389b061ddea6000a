"""/metrics: off unless CHATROOM_METRICS=1; scraped from a live server and parsed with the
Prometheus client's own parser; guarded by a token when one is configured."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FreshDb, StartServer

GUEST = "mutation Guest($name: String) { createGuestSession(displayName: $name) { token } }"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_operations_errors_and_live_state(
    fresh_db: FreshDb, start_server: StartServer
) -> None:
    db = await fresh_db()
    server = await start_server(db.url, {"CHATROOM_METRICS": "1"})
    async with httpx.AsyncClient() as http:
        guest = await http.post(
            server.http_url,
            json={"query": GUEST, "variables": {"name": "metrics"}},
        )
        assert guest.json()["data"]["createGuestSession"]["token"]
        refused = await http.post(server.http_url, json={"query": "query Mine { me { id } }"})
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        scraped = await http.get(f"{server.base_url}/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = _samples(scraped.text)
    created = samples[
        (
            "chatroom_graphql_operations_total",
            (("operation", "Guest"), ("type", "mutation")),
        )
    ]
    assert created == 1
    assert (
        samples[("chatroom_graphql_operations_total", (("operation", "Mine"), ("type", "query")))]
        == 1
    )
    assert samples[("chatroom_graphql_errors_total", (("code", "UNAUTHENTICATED"),))] >= 1
    assert samples[("chatroom_graphql_operation_seconds_count", (("operation", "Mine"),))] == 1
    for name in (
        "chatroom_open_subscriptions",
        "chatroom_watched_rooms",
        "chatroom_listener_reconnects_total",
        "chatroom_db_pool_checked_out",
        "chatroom_db_pool_size",
    ):
        assert (name, ()) in samples, name
    assert samples[("chatroom_db_pool_size", ())] > 0


async def test_metrics_are_off_by_default(fresh_db: FreshDb, start_server: StartServer) -> None:
    server = await start_server((await fresh_db()).url)
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.base_url}/metrics")).status_code == 404


async def test_metrics_token_and_proxied_requests(
    fresh_db: FreshDb, start_server: StartServer
) -> None:
    db = await fresh_db()
    open_server = await start_server(db.url, {"CHATROOM_METRICS": "1"})
    guarded = await start_server(
        db.url, {"CHATROOM_METRICS": "1", "CHATROOM_METRICS_TOKEN": "scrape-secret"}
    )
    async with httpx.AsyncClient() as http:
        # Without a token, a request that came through a proxy is not local: refused.
        proxied = await http.get(
            f"{open_server.base_url}/metrics", headers={"x-forwarded-for": "203.0.113.9"}
        )
        assert proxied.status_code == 403 and "CHATROOM_METRICS_TOKEN" in proxied.text
        missing = await http.get(f"{guarded.base_url}/metrics")
        assert missing.status_code == 401 and "Authorization: Bearer" in missing.text
        wrong = await http.get(
            f"{guarded.base_url}/metrics", headers={"authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        right = await http.get(
            f"{guarded.base_url}/metrics", headers={"authorization": "Bearer scrape-secret"}
        )
        assert right.status_code == 200 and "chatroom_db_pool_size" in right.text
