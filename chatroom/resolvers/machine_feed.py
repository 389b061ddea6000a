"""What a daemon follows: its machine and the machine's slots (machineAgents), yielded at once
and again after every committed change to any of them.

Subscribed to the machine's topic BEFORE the first read, so nothing committed after that read
slips past: every slot change and a change of who may steer a slot's room announce
"machine:<id>" (chatroom/resolvers/agents.py) in the changing transaction. A wake-up costs one
short read; a read that finds nothing the daemon would act on yields nothing. The caller's
token is checked like every subscription's (chatroom/resolvers/live.py): its revocation ends
this one with UNAUTHENTICATED."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from chatroom.db.models import Machine
from chatroom.resolvers import agents, validation
from chatroom.resolvers.agents import SlotView
from chatroom.resolvers.live import Line, Watch

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


async def follow_machine(line: Line, *, machine_id: str) -> AsyncGenerator[Found, None]:
    mid = validation.entity_id(machine_id, kind="machine")
    with line.hub.subscribe(mid) as wake:
        watch = Watch(line, wake)
        found = await watch.start(
            lambda tx, caller: agents.machine_agents(tx, caller, machine_id=machine_id),
            write=False,
        )
        last = None
        while True:
            if (key := _fingerprint(found)) != last:
                last = key
                yield found
            await watch.idle()
            async with line.db.read() as tx:
                found = await agents.machine_agents(tx, watch.caller, machine_id=machine_id)
