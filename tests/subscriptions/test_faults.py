"""Faults (SPEC §4): the server's LISTEN connection is killed and events committed during the
gap are still delivered; a thousand clients vanish without saying goodbye and the server
forgets them all (no subscriber, no WAITING role, no changed task, bounded memory)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.subscriptions.common import (
    delivery,
    events_through,
    healthz,
    new_room,
    room_events,
    task_available,
)
from tests.support import dbutil
from tests.support.api import connect, until
from tests.support.documents import ROOM_EVENTS, TASK_AVAILABLE
from tests.support.gql_client import Subprotocol, bearer
from tests.support.pg import PgDatabase, PgServer, quote_ident
from tests.support.server import LiveServer

# The listener's connection shows `LISTEN chatroom_events` as its last query, or (once rooms
# are watched) the safety net's periodic re-read of the watched rooms' counters.
LISTENER_PIDS = """
SELECT pid FROM pg_stat_activity
 WHERE datname = $1
   AND (query ILIKE 'LISTEN%' OR query ILIKE 'SELECT id, last_event_seq FROM chatrooms%')
"""
KILL_ROUNDS = 3

DISCONNECTS = 1000
BATCH = 50
ROOMS = BATCH // 2
# Every few connections are dropped right after their subscribe message, before the server
# has necessarily finished starting the subscription (a client that dies mid-handshake).
EARLY_DROP_EVERY = 5
RSS_BOUND_KB = 30 * 1024
# How long the server may take to let go of the vanished clients' subscriptions.
SETTLE_S = 30.0


async def _listener_pid(db: PgDatabase) -> int:
    rows = await dbutil.fetch(db.url, LISTENER_PIDS, db.name)
    if len(rows) != 1:
        activity = await dbutil.fetch(
            db.url,
            "SELECT pid, state, left(query, 60) AS query FROM pg_stat_activity WHERE datname = $1",
            db.name,
        )
        raise AssertionError(f"expected one LISTEN connection, found {rows}: {activity}")
    return int(rows[0]["pid"])


async def _terminate(db: PgDatabase, pid: int) -> None:
    assert await dbutil.fetchval(db.url, "SELECT pg_terminate_backend($1)", pid) is True


async def _listener_back(server: LiveServer, db: PgDatabase, reconnects: int, old_pid: int):
    async def check() -> bool:
        h = await healthz(server)
        return h["listener"] == "connected" and h["listenerReconnects"] >= reconnects

    await until(check, f"listener connected again with listenerReconnects >= {reconnects}")
    assert (await healthz(server))["listenerReconnects"] == reconnects
    assert await _listener_pid(db) != old_pid


async def test_events_committed_while_the_listen_connection_is_down_are_delivered(
    db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    """Kill the LISTEN connection and commit right away, before it is back."""
    server = await start_server(db.url)
    token, rid = await new_room(server)
    async with connect(server, token) as a:
        start = await a.last_event_seq(rid)
        async with (
            room_events(server, token, protocol, rid, after_seq=start) as feed,
            task_available(server, token, protocol, rid, "builder") as waiter,
        ):
            await a.wait_status(rid, "builder", "WAITING")
            seen = [e["seq"] for e in await events_through(feed, await a.last_event_seq(rid))]
            for round_no in range(KILL_ROUNDS):
                health = await healthz(server)
                assert health["listener"] == "connected"
                reconnects = health["listenerReconnects"]
                pid = await _listener_pid(db)
                await _terminate(db, pid)
                t0 = time.monotonic()
                sent = await a.send(rid, f"committed in the gap, round {round_no}")
                end = await a.last_event_seq(rid)
                seen += [e["seq"] for e in await events_through(feed, end)]
                took = time.monotonic() - t0
                if round_no == 0:  # the first request is pending; the others queue behind it
                    got = await delivery(waiter)
                    assert (got["kind"], got["task"]["id"]) == ("TASK", sent["task"]["id"])
                await _listener_back(server, db, reconnects + 1, pid)
                print(f"round {round_no}: gap events delivered {took * 1000:.0f} ms after kill")
            await feed.expect_nothing(0.2)
            assert seen == list(range(start + 1, await a.last_event_seq(rid) + 1))


async def test_a_long_listener_outage_loses_no_event(
    pg_server: PgServer, db: PgDatabase, start_server, protocol: Subprotocol
) -> None:
    """A certain gap: new connections to the database are refused while the LISTEN
    connection is down, so the listener cannot come back until we allow it; the app's
    pooled connections keep serving the mutations meanwhile."""
    server = await start_server(db.url)
    token, rid = await new_room(server)
    async with connect(server, token) as a:
        # Warm the app's pool: the outage forbids it opening new connections.
        await asyncio.gather(*(healthz(server) for _ in range(8)))
        start = await a.last_event_seq(rid)
        async with (
            room_events(server, token, protocol, rid, after_seq=start) as feed,
            task_available(server, token, protocol, rid, "builder") as waiter,
        ):
            await a.wait_status(rid, "builder", "WAITING")
            before_gap = await a.last_event_seq(rid)
            await events_through(feed, before_gap)
            reconnects = (await healthz(server))["listenerReconnects"]
            pid = await _listener_pid(db)
            async with pg_server.admin() as admin:  # the maintenance database
                name = quote_ident(db.name)
                await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
                try:
                    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True

                    async def down() -> bool:
                        return (await healthz(server))["listener"] == "reconnecting"

                    await until(down, "/healthz listener == reconnecting")
                    sent = await a.send(rid, "committed while nobody listens")
                    await a.send(rid, "queued while nobody listens")
                    gap_end = await a.last_event_seq(rid)
                    await asyncio.sleep(0.3)  # the outage lasts a while, on purpose
                    assert (await healthz(server))["listener"] == "reconnecting"
                finally:
                    await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            t0 = time.monotonic()
            got = await delivery(waiter)
            assert (got["kind"], got["task"]["id"]) == ("TASK", sent["task"]["id"])
            replay = await events_through(feed, gap_end)
            print(f"gap events delivered {(time.monotonic() - t0) * 1000:.0f} ms after the outage")
            assert [e["seq"] for e in replay] == list(range(before_gap + 1, gap_end + 1))
            await _listener_back(server, db, reconnects + 1, pid)
            # Live again, through the new LISTEN connection.
            await a.send(rid, "after the outage")
            after = await events_through(feed, await a.last_event_seq(rid))
            assert after[0]["seq"] == gap_end + 1
            await feed.expect_nothing(0.2)


# --- a thousand clients that vanish --------------------------------------------------------


def _cpu_s(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg.get("type") != "ka":  # legacy keep-alive
            return msg


async def _open_and_drop(
    server: LiveServer, token: str, protocol: Subprotocol, doc: str, variables: dict, n: int
) -> None:
    """A raw websocket client: init, subscribe, (usually) read the first result, then vanish
    without a complete/stop message: half of them reset the TCP connection, half send a
    websocket close frame."""
    ws = await websockets.connect(
        server.ws_url, subprotocols=[websockets.Subprotocol(protocol)], proxy=None, open_timeout=10
    )
    try:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": bearer(token)}})
        )
        assert (await _recv(ws))["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        payload = {"query": doc, "variables": variables}
        await ws.send(json.dumps({"type": start, "id": str(n), "payload": payload}))
        if n % EARLY_DROP_EVERY:
            first = await _recv(ws)
            assert first["type"] in ("next", "data"), first
            assert not first["payload"].get("errors"), first
    finally:
        if n % 2:
            ws.transport.abort()
        else:
            await ws.close()


async def _room_rows(url: str, rooms: list[str], table: str) -> list[tuple]:
    ids = [uuid.UUID(r) for r in rooms]
    order = "id" if table == "tasks" else "chatroom_id, role"
    rows = await dbutil.fetch(
        url, f"SELECT * FROM {table} WHERE chatroom_id = ANY($1::uuid[]) ORDER BY {order}", ids
    )
    return [tuple(r) for r in rows]


@pytest.mark.slow
async def test_a_thousand_abrupt_disconnects_leave_nothing_behind(
    db: PgDatabase, start_server
) -> None:
    server = await start_server(db.url)
    # One owner per room: connections per token are limited (and each owner holds two here).
    owners: list[str] = []
    rooms: list[str] = []
    for i in range(ROOMS):
        token, rid = await new_room(server, name=f"drop {i}")
        async with connect(server, token) as a:
            await a.send(rid, "delivered to many, claimed by none")
        owners.append(token)
        rooms.append(rid)
    tasks_before = await _room_rows(db.url, rooms, "tasks")
    protocols: list[Subprotocol] = ["graphql-transport-ws", "graphql-ws"]

    async def batch(k: int) -> None:
        jobs = []
        for i in range(BATCH):
            n = k * BATCH + i
            rid, token = rooms[i % ROOMS], owners[i % ROOMS]
            variables: dict[str, Any]
            if i < ROOMS:
                doc, variables = TASK_AVAILABLE, {"c": rid, "r": "builder"}
            else:
                doc, variables = ROOM_EVENTS, {"c": rid, "after": 0}
            jobs.append(_open_and_drop(server, token, protocols[n % 2], doc, variables, n))
        await asyncio.wait_for(asyncio.gather(*jobs), 60)

    async def settle() -> dict[str, Any]:
        """/healthz once the server has let go of every subscription (or after SETTLE_S)."""
        deadline = time.monotonic() + SETTLE_S
        health = await healthz(server)
        while health["subscribers"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            health = await healthz(server)
        return health

    async def not_idle() -> dict[str, int]:
        rows = await dbutil.fetch(
            db.url,
            "SELECT status, count(*) AS n FROM participants"
            " WHERE chatroom_id = ANY($1::uuid[]) AND status <> 'idle' GROUP BY status",
            [uuid.UUID(r) for r in rooms],
        )
        return {r["status"]: int(r["n"]) for r in rows}

    # Warm-up: the first connections allocate what the process keeps anyway.
    await batch(0)
    await batch(1)
    warm = await settle()
    rss_before, cpu_before = _rss_kb(server.pid), _cpu_s(server.pid)
    t0 = time.monotonic()
    for k in range(DISCONNECTS // BATCH):
        await batch(2 + k)
    opened = time.monotonic() - t0
    health = await settle()
    rss_after, cpu = _rss_kb(server.pid), _cpu_s(server.pid) - cpu_before
    left_present = await not_idle()
    print(
        f"\n{DISCONNECTS} abrupt disconnects (+{2 * BATCH} warm-up) in {opened:.1f}s"
        f" (server CPU {cpu:.1f}s, {cpu / DISCONNECTS * 1000:.0f} ms per connection);"
        f" subscribers left after warm-up {warm['subscribers']}, after the run"
        f" {health['subscribers']} (watchedRooms {health['watchedRooms']});"
        f" participants not idle {left_present};"
        f" server RSS before {rss_before / 1024:.1f} MB, after {rss_after / 1024:.1f} MB,"
        f" delta {(rss_after - rss_before) / 1024:+.1f} MB"
    )
    assert (warm["subscribers"], health["subscribers"]) == (0, 0), (warm, health)
    assert health["watchedRooms"] == 0, health
    assert left_present == {}, "a vanished waiter left its role WAITING"
    assert await _room_rows(db.url, rooms, "tasks") == tasks_before
    assert "clean-up failed" not in server.log_text()
    assert rss_after - rss_before < RSS_BOUND_KB, (rss_before, rss_after)
    # And the server still works.
    async with task_available(server, owners[0], "graphql-transport-ws", rooms[0], "builder") as w:
        assert (await delivery(w))["kind"] == "TASK"
