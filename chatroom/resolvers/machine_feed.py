"""What a daemon follows: its machine and the machine's slots (machineAgents), yielded at once
and again after every committed change to any of them.

Subscribed to the machine's topic BEFORE the first read, so nothing committed after that read
slips past: every slot change and a change of who may steer a slot's room announce
"machine:<id>" (chatroom/resolvers/agents.py) in the changing transaction. A wake-up costs one
short read; a read that finds nothing the daemon would act on yields nothing. The caller's
token is checked like every subscription's: at the start, at its expiry and the moment its
session is revoked (the hub wakes it through the session's id), which ends this one with
UNAUTHENTICATED."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from chatroom.db.listener import Hub
from chatroom.db.models import Machine, utcnow
from chatroom.db.session import Database
from chatroom.resolvers import agents, validation
from chatroom.resolvers.agents import SlotView
from chatroom.resolvers.auth import Caller, authenticate

# An idle subscription re-checks its token at least this often.
RECHECK_INTERVAL = 15.0

Found = tuple[Machine, list[SlotView]]


def _fingerprint(found: Found) -> Any:
    """What a change is: anything but the machine's heartbeat."""
    machine, views = found
    return (
        machine.name,
        machine.daemon_id,
        machine.harnesses,
        [agents.slot_payload(v) for v in views],
    )


async def follow_machine(
    db: Database,
    hub: Hub,
    token: str | None,
    seen: Callable[[Caller], Caller],
    *,
    machine_id: str,
) -> AsyncGenerator[Found, None]:
    """`seen` is told who the caller is (the request log)."""
    mid = validation.entity_id(machine_id, kind="machine")
    with hub.subscribe(mid) as wake:
        async with db.read() as tx:
            caller = seen(await authenticate(tx, token))
            hub.also_wake_on(wake, caller.session_id)  # a revocation wakes us at once
            found = await agents.machine_agents(tx, caller, machine_id=machine_id)
        last = None
        while True:
            if (key := _fingerprint(found)) != last:
                last = key
                yield found
            left = (caller.expires_at - utcnow()).total_seconds()
            await wake.wait(max(0.05, min(RECHECK_INTERVAL, left + 0.05)))
            async with db.read() as tx:
                if wake.recheck or utcnow() >= caller.expires_at:
                    wake.recheck = False
                    caller = seen(await authenticate(tx, token))
                found = await agents.machine_agents(tx, caller, machine_id=machine_id)
