"""A roomEvents replay longer than one read batch arrives without a stall (SPEC §4: a
subscription "replays from the cursor, then follows live"; a lost notification may cost
latency, but here no notification is lost: every event is already committed).

Three rooms get ~600 events each (200 queued requests, then completing the room cancels them
all in one transaction). A subscriber then replays each room from seq 0 on a process that has
no feed for the room yet. All events must arrive in order, and no gap between two consecutive
events may exceed STALL seconds: the whole log is in the table, so a pause means the
subscription sat waiting for a wake-up it did not need. (The pause, when the bug is present,
lasts until the listener's 5-second safety net fires: 0-5 s; three rooms make a pause under
STALL in all three unlikely, about 1%.)
"""

from __future__ import annotations

import asyncio
import itertools
import time

from tests.reliability.common import NO_RATE_LIMIT, RetryingClient, new_owner, new_room, room_log
from tests.support.documents import ROOM_EVENTS, SEND
from tests.support.gql_client import gql_ws
from tests.support.pg import PgDatabase

ROOMS = 3
REQUESTS = 200  # x (message + task) + 200 cancellations = ~600 events, more than one batch
STALL = 1.0  # seconds


async def test_a_replay_longer_than_one_read_batch_does_not_stall(
    db: PgDatabase, start_server
) -> None:
    # db before start_server: the server stops before its database is dropped.
    server = await start_server(db.url, NO_RATE_LIMIT)
    token, _ = await new_owner(server)
    async with RetryingClient(server, token) as client:
        rooms = [await new_room(client, f"replay {i}") for i in range(ROOMS)]

        async def fill(room_id: str) -> None:
            for n in range(REQUESTS):
                body = {"chatroomId": room_id, "content": f"request {n}"}
                await client.execute(SEND, input=body)
            await client.execute(
                "mutation($c: ID!) { completeChatroom(chatroomId: $c) { id } }", c=room_id
            )

        await asyncio.gather(*(fill(rid) for rid in rooms))

    report = []
    for rid in rooms:
        log = await room_log(db.url, rid)
        head = log[-1][0]
        arrivals: list[tuple[int, float]] = []
        async with asyncio.timeout(60), gql_ws(server, token) as ws:
            async for result in ws.subscribe(ROOM_EVENTS, c=rid, after=0):
                arrivals.append((int(result["roomEvents"]["seq"]), time.monotonic()))
                if arrivals[-1][0] >= head:
                    break
        assert [s for s, _ in arrivals] == list(range(1, head + 1))
        gap, after_seq = max((b[1] - a[1], a[0]) for a, b in itertools.pairwise(arrivals))
        total = arrivals[-1][1] - arrivals[0][1]
        report.append((head, total, gap, after_seq))
    print(
        "\nreplay: "
        + "; ".join(
            f"{head} events in {total:.2f}s, longest pause {gap:.2f}s after seq {seq}"
            for head, total, gap, seq in report
        )
    )
    stalls = [(seq, round(gap, 2)) for _, _, gap, seq in report if gap >= STALL]
    assert not stalls, (
        f"a replay paused for >= {STALL}s in the middle of an already-committed log "
        f"(after seq, seconds): {stalls}"
    )
