"""Machines (SPEC §10): computers where agents run, each its owner's alone. A daemon registers
its machine with its owner's login, reports the harnesses it found, and heartbeats; another
user's machine answers exactly like a missing one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import Machine, utcnow
from chatroom.db.notify import machine_payload, notify
from chatroom.resolvers import access, validation
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import BadInput, NotFound

# A machine is online while its daemon heartbeats (the daemon sends one every 10 s).
ONLINE_WITHIN = timedelta(seconds=30)
MAX_HARNESSES = 16
MAX_HARNESS_NAME_CHARS = 32
MAX_VERSION_CHARS = 100
_NOTIFIED = "chatroom.notified_machines"


@dataclass(frozen=True)
class HarnessInfo:
    name: str
    version: str | None = None


def refuse_agent_token(caller: Caller) -> None:
    """Machines and slots are run with a person's login, never with an agent token."""
    access.refuse_agent(
        caller,
        "manage machines or agent slots",
        "Run the daemon and `chatroom agents` with your own login (`chatroom auth login`).",
    )


def is_online(machine: Machine) -> bool:
    return utcnow() - machine.last_seen_at < ONLINE_WITHIN


async def announce(tx: AsyncSession, machine_id: uuid.UUID) -> None:
    """Wake the machine's machineAgents subscriptions when this transaction commits (once per
    machine and transaction)."""
    notified: set[uuid.UUID] = tx.info.setdefault(_NOTIFIED, set())
    if machine_id in notified:
        return
    notified.add(machine_id)
    connection = await tx.connection()
    await connection.execute(notify(machine_payload(machine_id)))


def daemon_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise BadInput(
            "daemonId is not a UUID: the daemon makes a new random one (uuid4) each time it "
            "starts.",
            field="daemonId",
        ) from None


def _harnesses(values: list[HarnessInfo]) -> list[dict[str, str | None]]:
    if len(values) > MAX_HARNESSES:
        raise BadInput(
            f"harnesses lists {len(values)} entries; the limit is {MAX_HARNESSES}.",
            field="harnesses",
        )
    found: list[dict[str, str | None]] = []
    for info in values:
        name = validation.storable(info.name, field="harnesses.name").strip()
        if not name or len(name) > MAX_HARNESS_NAME_CHARS:
            raise BadInput(
                f"A harness name is 1 to {MAX_HARNESS_NAME_CHARS} characters (such as "
                f"'claude'); got {info.name[:40]!r}.",
                field="harnesses.name",
            )
        version = info.version
        if version is not None:
            version = validation.storable(version, field="harnesses.version").strip()[
                :MAX_VERSION_CHARS
            ]
        found.append({"name": name, "version": version or None})
    return found


async def own_machine(
    tx: AsyncSession, caller: Caller, machine_id: str, *, lock: bool = False
) -> Machine:
    """The caller's machine, or NOT_FOUND (someone else's looks missing)."""
    mid = validation.entity_id(machine_id, kind="machine")
    query = select(Machine).where(Machine.id == mid, Machine.owner_id == caller.user_id)
    machine = (await tx.exec(query.with_for_update() if lock else query)).first()
    if machine is None:
        raise NotFound(
            f"No machine with id {machine_id!r} is yours. List yours with the machines query "
            "(or `chatroom machine list`); a daemon registers its computer with registerMachine "
            "(`chatroom machine start`)."
        )
    return machine


async def register_machine(
    tx: AsyncSession,
    caller: Caller,
    *,
    machine_id: str | None,
    name: str,
    harnesses: list[HarnessInfo],
    daemon: str,
) -> Machine:
    """A new machine, or (machine_id given) the caller's machine brought up to date."""
    refuse_agent_token(caller)
    values: dict[str, Any] = {
        "name": validation.name(name, field="name"),
        "harnesses": _harnesses(harnesses),
        "daemon_id": daemon_id(daemon),
        "last_seen_at": utcnow(),
    }
    if machine_id is None:
        machine = Machine(owner_id=caller.user_id, **values)
    else:
        machine = await own_machine(tx, caller, machine_id, lock=True)
        for key, value in values.items():
            setattr(machine, key, value)
    tx.add(machine)
    await tx.flush()
    await announce(tx, machine.id)
    return machine


async def machine_heartbeat(
    tx: AsyncSession, caller: Caller, *, machine_id: str, daemon: str
) -> Machine:
    """The daemon is alive: lastSeenAt = now (no wake-up: nothing a daemon follows changed)."""
    refuse_agent_token(caller)
    daemon_id(daemon)
    machine = await own_machine(tx, caller, machine_id, lock=True)
    machine.last_seen_at = utcnow()
    tx.add(machine)
    await tx.flush()
    return machine


async def list_machines(tx: AsyncSession, caller: Caller) -> list[Machine]:
    refuse_agent_token(caller)
    query = (
        select(Machine)
        .where(Machine.owner_id == caller.user_id)
        .order_by(col(Machine.created_at), col(Machine.id))
    )
    return list((await tx.exec(query)).all())


async def find_machine(tx: AsyncSession, caller: Caller, *, machine_id: str) -> Machine | None:
    refuse_agent_token(caller)
    try:
        return await own_machine(tx, caller, machine_id)
    except NotFound:
        return None
