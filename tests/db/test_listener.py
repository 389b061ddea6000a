"""A subscriber's wait (chatroom/db/listener.py): it returns when woken, and never later than
its `at_most`; its deadline is one timer that outlives a wake-up; a cancellation is never
swallowed; leaving the hub cancels the timer."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from chatroom.db.listener import Hub, Subscriber


async def test_a_wake_before_the_wait_returns_at_once() -> None:
    subscriber = Subscriber(uuid.uuid4())
    subscriber.wake(7)
    await asyncio.wait_for(subscriber.wait(3600), 5)
    assert subscriber.announced_seq == 7
    assert subscriber._timer is None  # woken already: no deadline was needed


async def test_a_wake_ends_the_wait_and_the_deadline_stays_for_the_next() -> None:
    subscriber = Subscriber(uuid.uuid4())
    waiting = asyncio.ensure_future(subscriber.wait(3600))
    await asyncio.sleep(0)  # the wait has begun and set its deadline
    timer = subscriber._timer
    assert timer is not None
    subscriber.wake(1)
    await asyncio.wait_for(waiting, 5)
    # A later wait with a later deadline keeps the pending timer (no timer per wake-up)...
    waiting = asyncio.ensure_future(subscriber.wait(3600))
    await asyncio.sleep(0)
    assert subscriber._timer is timer and not timer.cancelled()
    subscriber.wake(2)
    await asyncio.wait_for(waiting, 5)
    # ...and one with an earlier deadline replaces it: the wait never lasts beyond at_most.
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(subscriber.wait(0.05), 5)
    assert timer.cancelled()
    assert loop.time() >= started + 0.05 - 0.01  # returned by its own deadline, not a wake
    assert subscriber._timer is None  # it fired


async def test_a_deadline_that_fires_between_waits_ends_the_next_one_at_once() -> None:
    subscriber = Subscriber(uuid.uuid4())
    waiting = asyncio.ensure_future(subscriber.wait(0.05))
    await asyncio.sleep(0)
    timer = subscriber._timer
    assert timer is not None
    subscriber.wake(1)  # woken first: the deadline stays pending
    await asyncio.wait_for(waiting, 5)
    fired = asyncio.Event()  # the fence: runs just after the timer, at the same time
    asyncio.get_running_loop().call_at(timer.when(), fired.set)
    await asyncio.wait_for(fired.wait(), 5)
    assert subscriber._timer is None
    # The expired deadline left the flag set: the next wait re-reads at once (early, harmless).
    await asyncio.wait_for(subscriber.wait(3600), 5)


async def test_a_cancelled_wait_raises_even_when_woken_in_the_same_step() -> None:
    subscriber = Subscriber(uuid.uuid4())
    waiting = asyncio.ensure_future(subscriber.wait(3600))
    await asyncio.sleep(0)
    subscriber.wake(1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_leaving_the_hub_cancels_the_deadline() -> None:
    hub = Hub()
    room = uuid.uuid4()
    with hub.subscribe(room) as subscriber:
        waiting = asyncio.ensure_future(subscriber.wait(3600))
        await asyncio.sleep(0)
        timer = subscriber._timer
        hub.publish(room, 1)
        await asyncio.wait_for(waiting, 5)
        assert timer is not None and not timer.cancelled()
    assert timer.cancelled() and subscriber._timer is None
    assert hub.subscriber_count == 0
