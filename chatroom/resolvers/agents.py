"""Agent slots (SPEC §10): (room, role) -> machine, harness, working directory and desired
state, and what the serving daemon last reported.

People set what is desired (startAgents needs steer rights in the room and owning the
machine, and moving a slot off another user's machine is, like stop and restart, the room
owner's or that machine's owner's); the daemon of the slot's machine claims a slot (newest
claim wins) and reports its state for that claim's generation, with its owner's login, while
its owner may still steer the room (giving the slot up, a STOPPED report, needs no more).
Every change locks the room row first (the one lock that orders a room's writers), appends one
AGENT_UPDATED event with the slot as the change left it, and wakes the machine's machineAgents
subscriptions, all in the changing transaction. A claim mints the slot's own agent token
(scoped to its room and role, minted for the machine's owner); stopping, re-claiming, reporting
STOPPED, completing the room, moving the slot to another machine and its machine's owner losing
the right to steer the room revoke it, and the sessions trigger announces the revocation, which
ends the harness's subscriptions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.events import append_event, snapshot
from chatroom.db.models import (
    MAX_ACTIVITY_CHARS,
    MAX_LAST_ERROR_CHARS,
    AgentDesiredState,
    AgentSlot,
    AgentState,
    AuthSession,
    Chatroom,
    EventKind,
    Harness,
    Machine,
    MemberRole,
    RoomMember,
    utcnow,
)
from chatroom.resolvers import access, auth, validation
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import BadInput, Conflict, Forbidden, NotFound
from chatroom.resolvers.machines import announce, daemon_id, own_machine, refuse_agent_token
from chatroom.resolvers.teams import role_priority

MAX_WORKDIR_CHARS = 4096
MAX_COMMAND_CHARS = 4000
MAX_TASK_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class SlotView:
    slot: AgentSlot
    machine_name: str


def slot_payload(view: SlotView) -> dict[str, Any]:
    """The slot as an event carries it: its row (but the token's session id) and the machine's
    name."""
    payload = snapshot(view.slot)
    payload.pop("token_session_id", None)
    return payload | {"machine_name": view.machine_name}


# --- reads ----------------------------------------------------------------------------------


async def slots_by_room(tx: AsyncSession, room_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Each room's slots in role-priority order (Chatroom.agents; the room is already known to
    be visible to the caller)."""
    rows = await tx.exec(
        select(AgentSlot, Machine.name)
        .join(Machine, col(Machine.id) == AgentSlot.machine_id)
        .where(col(AgentSlot.chatroom_id).in_(room_ids))
    )
    grouped: dict[uuid.UUID, list[SlotView]] = {}
    for slot, name in rows.all():
        grouped.setdefault(slot.chatroom_id, []).append(SlotView(slot, name))
    for views in grouped.values():
        views.sort(key=lambda v: role_priority(v.slot.role))
    return grouped


async def machine_slots(tx: AsyncSession, caller: Caller, machine: Machine) -> list[SlotView]:
    """The caller's machine's slots in rooms the caller may still steer (SPEC §10: a daemon
    acts only for rooms its owner may run agents in; it stops the others)."""
    rows = await tx.exec(
        select(AgentSlot)
        .join(Chatroom, col(Chatroom.id) == AgentSlot.chatroom_id)
        .where(AgentSlot.machine_id == machine.id, access.visible_to(caller, (MemberRole.MEMBER,)))
        .order_by(
            col(Chatroom.created_at),
            func.array_position(col(Chatroom.team_roles), col(AgentSlot.role)),
        )
    )
    return [SlotView(slot, machine.name) for slot in rows.all()]


async def machine_agents(
    tx: AsyncSession, caller: Caller, *, machine_id: str
) -> tuple[Machine, list[SlotView]]:
    refuse_agent_token(caller)
    machine = await own_machine(tx, caller, machine_id)
    return machine, await machine_slots(tx, caller, machine)


# --- input ----------------------------------------------------------------------------------


def _roles(room: Chatroom, roles: list[str] | None) -> list[str]:
    """The named team roles (each once, as given), or none."""
    wanted: list[str] = []
    for value in roles or ():
        role = access.team_role(room, value, field="roles")
        if role not in wanted:
            wanted.append(role)
    return wanted


def _harness(value: str) -> Harness:
    try:
        return Harness(value.strip().lower())
    except ValueError:
        allowed = [h.value for h in Harness]
        raise BadInput(
            f"harness {value[:40]!r} is not one the daemon runs. Use one of: "
            f"{', '.join(allowed)} (command runs any program: pass command too).",
            field="harness",
            allowed=allowed,
        ) from None


def _workdir(value: str) -> str:
    path = validation.storable(value, field="workdir").strip()
    if not path or not (PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute()):
        raise BadInput(
            f"workdir {value[:200]!r} is not an absolute path: give the directory on the "
            "machine where the agent works, starting at / (for example /home/ada/project).",
            field="workdir",
        )
    if len(path) > MAX_WORKDIR_CHARS:
        raise BadInput(f"workdir is longer than {MAX_WORKDIR_CHARS} characters.", field="workdir")
    return path


def _command(harness: Harness, value: str | None) -> str | None:
    command = validation.storable(value, field="command").strip() if value else None
    if harness is Harness.COMMAND and not command:
        raise BadInput(
            "harness command needs command: the program to run, with {prompt_file} where the "
            "prompt file's path goes (for example 'my-agent {prompt_file}').",
            field="command",
        )
    if harness is not Harness.COMMAND and command:
        raise BadInput(
            f"command is only for harness command; harness {harness.value} runs its own CLI. "
            "Leave command out, or use harness command.",
            field="command",
        )
    if command and len(command) > MAX_COMMAND_CHARS:
        raise BadInput(f"command is longer than {MAX_COMMAND_CHARS} characters.", field="command")
    return command


def _timeout(value: int | None) -> int | None:
    limit = int(MAX_TASK_TIMEOUT.total_seconds())
    if value is not None and not 1 <= value <= limit:
        raise BadInput(
            f"taskTimeoutSeconds is 1 to {limit} (7 days), or leave it out for no limit.",
            field="taskTimeoutSeconds",
        )
    return value


def _model(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return validation.name(value, field="model")


def _cut(value: str | None, limit: int, *, field: str) -> str | None:
    """Longer text is cut with an ellipsis, not refused (a daemon's report must not fail)."""
    if value is None:
        return None
    text = validation.storable(value, field=field)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- writes ---------------------------------------------------------------------------------


async def _changed(tx: AsyncSession, room: Chatroom, view: SlotView) -> SlotView:
    """One slot change: written, logged as AGENT_UPDATED, and announced to its machine."""
    view.slot.updated_at = utcnow()
    tx.add(view.slot)
    await tx.flush()
    append_event(tx, room, EventKind.AGENT_UPDATED, {"agent": slot_payload(view)})
    await announce(tx, view.slot.machine_id)
    return view


async def _revoke_token(tx: AsyncSession, slot: AgentSlot) -> bool:
    """Revoke the slot's token, if it has one; the sessions trigger announces it (every
    process forgets it and wakes its subscriptions, which then end)."""
    session_id = slot.token_session_id
    if session_id is None:
        return False
    await tx.exec(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    auth.forget_session(session_id)
    slot.token_session_id = None
    return True


def _release(slot: AgentSlot) -> None:
    """No daemon serves the slot any more (its token is revoked first): it shows STOPPED."""
    slot.daemon_id = None
    slot.state = AgentState.STOPPED.value
    slot.activity = None
    slot.task_id = None


def _manages(caller: Caller, room: Chatroom, machine: Machine) -> bool:
    """Who may stop, restart or move a slot: the room's owner or its machine's owner."""
    return caller.user_id in (room.owner_id, machine.owner_id)


async def _room_slots(tx: AsyncSession, room: Chatroom) -> dict[str, tuple[AgentSlot, Machine]]:
    """The room's slots by role, locked (the caller holds the room lock)."""
    rows = await tx.exec(
        select(AgentSlot, Machine)
        .join(Machine, col(Machine.id) == AgentSlot.machine_id)
        .where(AgentSlot.chatroom_id == room.id)
        .with_for_update(of=AgentSlot)
        .execution_options(populate_existing=True)
    )
    return {slot.role: (slot, machine) for slot, machine in rows.all()}


async def start_agents(
    tx: AsyncSession,
    caller: Caller,
    *,
    chatroom_id: str,
    roles: list[str] | None,
    machine_id: str,
    harness: str,
    workdir: str,
    model: str | None,
    command: str | None,
    fresh_session: bool,
    task_timeout_seconds: int | None,
) -> list[SlotView]:
    """Every named role (default: the whole team) to run on the caller's machine with this
    config. A slot already running with the same config is left as it is; a new config, a
    stopped slot or another machine bumps the generation (the daemon starts it afresh)."""
    refuse_agent_token(caller)
    room = await access.load_room(tx, caller, chatroom_id, lock=True, steer=True)
    access.require_open(room)
    machine = await own_machine(tx, caller, machine_id)
    kind = _harness(harness)
    config: dict[str, Any] = {
        "machine_id": machine.id,
        "harness": kind.value,
        "workdir": _workdir(workdir),
        "model": _model(model),
        "command": _command(kind, command),
        "fresh_session": fresh_session,
        "task_timeout_seconds": _timeout(task_timeout_seconds),
    }
    existing = await _room_slots(tx, room)
    wanted = _roles(room, roles) or list(room.team_roles)
    # Moving a slot off someone else's machine takes their agent away: like stopping it, that
    # is the room owner's or that machine owner's (a slot there always differs in machine).
    others = [r for r in wanted if r in existing and not _manages(caller, room, existing[r][1])]
    if others:
        raise Forbidden(
            f"{', '.join(others)} runs on someone else's machine: only the room's owner or the "
            "owner of that machine can move it to yours (or stop or restart it). Ask them, or "
            "name only the other roles (`--role`, the roles field).",
            roles=others,
        )
    views: list[SlotView] = []
    for role in wanted:
        found = existing.get(role)
        if found is None:
            slot = AgentSlot(chatroom_id=room.id, role=role, **config)
            views.append(await _changed(tx, room, SlotView(slot, machine.name)))
            continue
        slot, was_on = found
        restart = slot.desired_state == AgentDesiredState.STOPPED.value or any(
            getattr(slot, key) != value for key, value in config.items()
        )
        if not restart:
            views.append(SlotView(slot, machine.name))  # nothing to change
            continue
        if was_on.id != machine.id:
            # The old machine's daemon loses the slot (its list no longer has it) and its token.
            await _revoke_token(tx, slot)
            await announce(tx, was_on.id)
            _release(slot)
        for key, value in config.items():
            setattr(slot, key, value)
        slot.desired_state = AgentDesiredState.RUNNING.value
        slot.generation += 1
        views.append(await _changed(tx, room, SlotView(slot, machine.name)))
    return views


async def _targets(
    tx: AsyncSession, caller: Caller, room: Chatroom, roles: list[str] | None, verb: str
) -> list[tuple[AgentSlot, Machine]]:
    """The slots stopAgents/restartAgents act on: the named roles' (each must have a slot the
    caller may manage), or every slot the caller may manage."""
    existing = await _room_slots(tx, room)

    def manages(machine: Machine) -> bool:
        return _manages(caller, room, machine)

    wanted = _roles(room, roles)
    missing = [role for role in wanted if role not in existing]
    if missing or not existing:
        which = ", ".join(missing) if missing else "any role"
        role = missing[0] if missing else room.team_roles[0]
        raise BadInput(
            f"No agent slot for {which} in this room, so there is nothing to {verb}. Start it "
            f"first: `chatroom agents start {room.id} --role {role} --harness H --workdir DIR` "
            "(startAgents).",
            field="roles",
            roles=missing,
        )
    chosen = [existing[role] for role in wanted] or [
        found for found in existing.values() if manages(found[1])
    ]
    refused = [slot.role for slot, machine in chosen if not manages(machine)]
    if refused or not chosen:
        raise Forbidden(
            f"Only the room's owner or the owner of the machine that runs an agent can {verb} "
            f"it ({', '.join(refused) or 'every slot here'} runs on someone else's machine). "
            "Ask them, or the room's owner.",
            roles=refused,
        )
    return chosen


async def stop_agents(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, roles: list[str] | None
) -> list[SlotView]:
    """Desired STOPPED, and each slot's token revoked (its harness's subscriptions end)."""
    refuse_agent_token(caller)
    # Stopping one's own agents needs no steer rights (a viewer may stop what runs on their
    # machine); only seeing the room.
    room = await access.load_room(tx, caller, chatroom_id, lock=True, steer=False)
    views: list[SlotView] = []
    for slot, machine in await _targets(tx, caller, room, roles, "stop"):
        revoked = await _revoke_token(tx, slot)
        view = SlotView(slot, machine.name)
        if revoked or slot.desired_state != AgentDesiredState.STOPPED.value:
            slot.desired_state = AgentDesiredState.STOPPED.value
            view = await _changed(tx, room, view)
        views.append(view)
    return views


async def restart_agents(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, roles: list[str] | None
) -> list[SlotView]:
    """Desired RUNNING and generation+1: the daemon starts the slot afresh (closing an open
    circuit) and claims it again."""
    refuse_agent_token(caller)
    room = await access.load_room(tx, caller, chatroom_id, lock=True, steer=True)
    access.require_open(room)
    views: list[SlotView] = []
    for slot, machine in await _targets(tx, caller, room, roles, "restart"):
        slot.desired_state = AgentDesiredState.RUNNING.value
        slot.generation += 1
        views.append(await _changed(tx, room, SlotView(slot, machine.name)))
    return views


async def _daemon_slot(
    tx: AsyncSession, caller: Caller, slot_id: str, *, steer: bool = True
) -> tuple[Chatroom, AgentSlot, Machine]:
    """A slot of one of the caller's machines, its room locked (`steer`: the caller must still
    be able to steer it), then the slot itself."""
    sid = validation.entity_id(slot_id, kind="agent slot")
    query = (
        select(AgentSlot, Machine)
        .join(Machine, col(Machine.id) == AgentSlot.machine_id)
        .where(AgentSlot.id == sid, Machine.owner_id == caller.user_id)
    )
    found = (await tx.exec(query)).first()
    if found is None:
        raise NotFound(
            f"No agent slot with id {slot_id!r} runs on your machines. Follow machineAgents "
            "for your machine's slots."
        )
    try:
        room = await _slot_room(tx, caller, found[0], steer=steer)
    except NotFound:
        raise Forbidden(
            "You can no longer run agents in this slot's room (you are not its owner or a "
            "member any more): stop its harness."
        ) from None
    # Under the room lock no other writer changes the slot: read it as it is now.
    locked = (
        await tx.exec(query.with_for_update(of=AgentSlot).execution_options(populate_existing=True))
    ).first()
    if locked is None:  # moved to another user's machine meanwhile
        raise NotFound(f"Agent slot {slot_id!r} no longer runs on your machines; stop it.")
    return room, locked[0], locked[1]


async def _slot_room(tx: AsyncSession, caller: Caller, slot: AgentSlot, *, steer: bool) -> Chatroom:
    if steer:
        return await access.load_room(tx, caller, str(slot.chatroom_id), lock=True, steer=True)
    # Giving a slot up needs no rights in its room: the slot being on the caller's machine is
    # enough (the room is only locked, never shown).
    query = select(Chatroom).where(Chatroom.id == slot.chatroom_id).with_for_update()
    room = (await tx.exec(query)).first()
    if room is None:
        raise NotFound("The slot's room is gone.")
    return room


@dataclass(frozen=True)
class Claimed:
    view: SlotView
    token: str


async def claim_slot(
    tx: AsyncSession, caller: Caller, *, slot_id: str, daemon: str, generation: int
) -> Claimed:
    """Newest claim wins: this daemon serves the slot now, with a fresh token (the previous
    one is revoked, so a daemon that served it before loses its harness's access)."""
    refuse_agent_token(caller)
    serving = daemon_id(daemon)
    room, slot, machine = await _daemon_slot(tx, caller, slot_id)
    access.require_open(room)
    if slot.desired_state != AgentDesiredState.RUNNING.value or slot.generation != generation:
        raise Conflict(
            f"The slot changed (it is now {slot.desired_state.upper()}, generation "
            f"{slot.generation}; you asked for generation {generation}): follow machineAgents "
            "and claim what it says should run.",
            generation=slot.generation,
        )
    await _revoke_token(tx, slot)
    token, session = await auth.mint_session(
        tx,
        user_id=machine.owner_id,
        device_name=f"agent {slot.role} on {machine.name}"[: validation.MAX_NAME_CHARS],
        scope_chatroom_id=room.id,
        scope_role=slot.role,
    )
    slot.daemon_id = serving
    slot.token_session_id = session.id
    slot.state = AgentState.STARTING.value
    slot.activity = None
    slot.reported_at = utcnow()
    return Claimed(await _changed(tx, room, SlotView(slot, machine.name)), token)


async def report_state(
    tx: AsyncSession,
    caller: Caller,
    *,
    slot_id: str,
    daemon: str,
    generation: int,
    state: AgentState,
    activity: str | None,
    last_error: str | None,
    task_id: str | None,
) -> SlotView:
    """What the serving daemon sees of the claim it made at `generation`. Logged only when it
    changes something (a report that repeats the last one only records reportedAt). STOPPED
    revokes the slot's token; it only gives things up, so it needs no steer rights."""
    refuse_agent_token(caller)
    serving = daemon_id(daemon)
    report = {
        "state": state.value,
        "activity": _cut(activity, MAX_ACTIVITY_CHARS, field="activity"),
        "last_error": _cut(last_error, MAX_LAST_ERROR_CHARS, field="lastError"),
        "task_id": validation.entity_id(task_id, kind="task") if task_id else None,
    }
    stopped = state is AgentState.STOPPED
    room, slot, machine = await _daemon_slot(tx, caller, slot_id, steer=not stopped)
    if slot.daemon_id != serving:
        raise Conflict(
            "Another daemon serves this slot (it claimed it after you), or none does (it was "
            "stopped or moved): stop its harness, and claim it again only when machineAgents "
            "shows a new generation."
        )
    if slot.generation != generation:
        # A late report about an earlier claim must not touch (or revoke) the current one.
        raise Conflict(
            f"The slot was restarted or changed (it is at generation {slot.generation}; your "
            f"report is about generation {generation}): follow machineAgents and report only "
            "for the claim you hold.",
            generation=slot.generation,
        )
    changed = any(getattr(slot, key) != value for key, value in report.items())
    for key, value in report.items():
        setattr(slot, key, value)
    slot.reported_at = utcnow()
    revoked = stopped and await _revoke_token(tx, slot)
    view = SlotView(slot, machine.name)
    if changed or revoked:
        return await _changed(tx, room, view)
    tx.add(slot)
    await tx.flush()
    return view


async def stop_room_agents(tx: AsyncSession, room: Chatroom) -> None:
    """A completed room runs no agents: every slot stopped, its token revoked (the caller
    holds the room lock)."""
    for slot, machine in (await _room_slots(tx, room)).values():
        revoked = await _revoke_token(tx, slot)
        if revoked or slot.desired_state != AgentDesiredState.STOPPED.value:
            slot.desired_state = AgentDesiredState.STOPPED.value
            await _changed(tx, room, SlotView(slot, machine.name))


async def room_access_changed(tx: AsyncSession, room: Chatroom) -> None:
    """Who may steer the room changed (the caller holds the room lock): a slot on the machine
    of someone who no longer may is stopped for good (its token revoked, desired STOPPED, so
    being made a member again revives nothing without a person's start), and every machine of
    the room's slots is woken (their lists leave out rooms their owner may not steer)."""
    members = await tx.exec(
        select(RoomMember.user_id).where(
            RoomMember.chatroom_id == room.id, RoomMember.role == MemberRole.MEMBER.value
        )
    )
    steerers = {room.owner_id, *members.all()}
    for slot, machine in (await _room_slots(tx, room)).values():
        if machine.owner_id not in steerers:
            revoked = await _revoke_token(tx, slot)
            was = (slot.desired_state, slot.state, slot.daemon_id)
            slot.desired_state = AgentDesiredState.STOPPED.value
            _release(slot)
            if revoked or was != (slot.desired_state, slot.state, slot.daemon_id):
                await _changed(tx, room, SlotView(slot, machine.name))
                continue
        await announce(tx, machine.id)
