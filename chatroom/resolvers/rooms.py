"""Chatrooms: create, list, rename, complete, interrupt, join."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.events import snapshot
from chatroom.db.models import (
    Chatroom,
    MessageType,
    Participant,
    ParticipantStatus,
    RoomStatus,
    Task,
    TaskStatus,
    utcnow,
)
from chatroom.resolvers import access, agents, idempotency, validation, writers
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import BadInput
from chatroom.resolvers.teams import CUSTOM_TEAM_ID, TEMPLATES
from chatroom.resolvers.validation import MAX_TEAM_ROLES, USER_ROLE


def _team(
    team_id: str | None, roles: list[str] | None, entry_point: str | None
) -> tuple[str, str, list[str], str]:
    """(team id, team name, roles, entry point) from a template or a validated custom list."""
    if roles is None:
        template = TEMPLATES.get((team_id or "pair").strip().lower())
        if template is None:
            raise BadInput(
                f"Unknown teamId {team_id!r}. Use one of: {', '.join(TEMPLATES)}, "
                "or pass your own roles (and entryPoint) for a custom team.",
                field="teamId",
            )
        entry = validation.role(entry_point, field="entryPoint") if entry_point else None
        if entry is not None and entry not in template.roles:
            raise BadInput(
                f"entryPoint {entry!r} is not a role of the {template.id} team "
                f"({', '.join(template.roles)}).",
                field="entryPoint",
            )
        return template.id, template.name, list(template.roles), entry or template.entry_point
    if not 1 <= len(roles) <= MAX_TEAM_ROLES:
        raise BadInput(f"A team has 1 to {MAX_TEAM_ROLES} roles; got {len(roles)}.", field="roles")
    normalized = [validation.role(r, field="roles") for r in roles]
    if USER_ROLE in normalized:
        raise BadInput("'user' is reserved for the human; pick another role name.", field="roles")
    duplicates = sorted({r for r in normalized if normalized.count(r) > 1})
    if duplicates:
        raise BadInput(f"Each role appears once; repeated: {', '.join(duplicates)}.", field="roles")
    entry = validation.role(entry_point, field="entryPoint") if entry_point else normalized[0]
    if entry not in normalized:
        raise BadInput(
            f"entryPoint {entry!r} must be one of the roles: {', '.join(normalized)}.",
            field="entryPoint",
        )
    template = TEMPLATES.get((team_id or "").strip().lower())
    if team_id and template is None and team_id.strip().lower() != CUSTOM_TEAM_ID:
        raise BadInput(
            f"Unknown teamId {team_id!r}: omit it (or use 'custom') for a custom team.",
            field="teamId",
        )
    return CUSTOM_TEAM_ID, "Custom", normalized, entry


async def create_chatroom(
    tx: AsyncSession,
    caller: Caller,
    *,
    team_id: str | None,
    name: str | None,
    roles: list[str] | None,
    entry_point: str | None,
    idempotency_key: str | None,
) -> Chatroom:
    access.require_owner(caller)
    tid, team_name, team_roles, entry = _team(team_id, roles, entry_point)
    room_name = validation.name(name if name is not None else team_name)
    key = validation.idempotency_key(idempotency_key)
    request: dict[str, Any] = {
        "teamId": tid,
        "name": room_name,
        "roles": team_roles,
        "entry": entry,
    }
    replay = await idempotency.reserve_or_replay(tx, caller, "createChatroom", key, request)
    if replay is not None:
        room = await tx.get(Chatroom, Chatroom.model_validate(replay["room"]).id)
        assert room is not None
        return room
    room = Chatroom(
        owner_id=caller.user_id,
        name=room_name,
        team_id=tid,
        team_name=team_name,
        team_roles=team_roles,
        entry_point=entry,
    )
    tx.add(room)
    await tx.flush()
    for role in team_roles:
        tx.add(Participant(chatroom_id=room.id, role=role))
    await tx.flush()
    await writers.room_updated(tx, room)
    await idempotency.record(tx, caller, "createChatroom", key, {"room": snapshot(room)})
    return room


async def list_chatrooms(
    tx: AsyncSession, caller: Caller, *, status: RoomStatus | None = None
) -> list[Chatroom]:
    query = select(Chatroom).where(access.visible_to(caller))
    if caller.scope_chatroom_id is not None:
        query = query.where(Chatroom.id == caller.scope_chatroom_id)
    if status is not None:
        query = query.where(Chatroom.status == status.value)
    return list((await tx.exec(query.order_by(col(Chatroom.created_at).desc()))).all())


async def rename_chatroom(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, name: str
) -> Chatroom:
    access.require_owner(caller)
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    access.require_room_owner(room, caller)
    room.name = validation.name(name)
    await writers.room_updated(tx, room)
    return room


async def complete_chatroom(tx: AsyncSession, caller: Caller, *, chatroom_id: str) -> Chatroom:
    """Completed rooms take no new work; the active and queued tasks are cancelled with it."""
    access.require_owner(caller)
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    access.require_room_owner(room, caller)
    if room.status == RoomStatus.COMPLETED:
        return room
    room.status = RoomStatus.COMPLETED.value
    open_tasks = await tx.exec(
        select(Task).where(
            Task.chatroom_id == room.id,
            col(Task.status).in_([TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.QUEUED]),
        )
    )
    for task in open_tasks.all():
        await writers.set_task_status(tx, room, task, TaskStatus.CANCELLED)
    for role in room.team_roles:
        await writers.set_participant(tx, room, role, ParticipantStatus.IDLE)
    await agents.stop_room_agents(tx, room)
    await writers.room_updated(tx, room)
    return room


async def interrupt_chatroom(tx: AsyncSession, caller: Caller, *, chatroom_id: str) -> Chatroom:
    """Stop everyone: all participants idle, an interrupt message for every waiter, and the
    active task back to pending (same assignee) so the work can resume later."""
    access.require_owner(caller)
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    access.require_open(room)
    task = await writers.active_task(tx, room)
    if task is not None and task.status == TaskStatus.IN_PROGRESS:
        await writers.set_task_status(tx, room, task, TaskStatus.PENDING)
    await writers.insert_message(
        tx,
        room,
        sender_role=USER_ROLE,
        content="The user interrupted the room: stop the current work and wait for instructions.",
        type=MessageType.INTERRUPT,
    )
    for role in room.team_roles:
        await writers.set_participant(tx, room, role, ParticipantStatus.IDLE)
    return room


async def join_chatroom(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, role: str
) -> Participant:
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    joined = access.acting_role(room, caller, role)
    await writers.expire_lapsed_lease(tx, room)
    row = await writers.participant(tx, room, joined)
    if row.last_seen_at is None:
        await writers.insert_message(
            tx,
            room,
            sender_role=joined,
            content=f"{joined} joined the room.",
            type=MessageType.JOIN,
        )
    task = await writers.active_task(tx, room)
    holds = (
        task is not None and task.status == TaskStatus.IN_PROGRESS and task.assigned_to == joined
    )
    status = ParticipantStatus.ACTIVE if holds else ParticipantStatus.WAITING
    return await writers.set_participant(tx, room, joined, status, seen_at=utcnow())
