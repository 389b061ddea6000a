"""The building blocks every state change is made of. Each one writes its row AND appends the
room event describing it, so no caller can change state without the log seeing it.

Callers lock the room row first (`load_room(..., lock=True)`): that single lock orders every
writer of a room, which keeps the per-room counters gapless; the database constraints back it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.events import append_event, refresh_pending, snapshot
from chatroom.db.models import (
    ACTIVE_TASK_STATUSES,
    Chatroom,
    EventKind,
    Message,
    MessageType,
    Participant,
    ParticipantStatus,
    RoomStatus,
    Task,
    TaskStatus,
    utcnow,
)
from chatroom.resolvers import validation
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import BadInput, Conflict, Forbidden, NotFound
from chatroom.resolvers.validation import USER_ROLE


def routable_to(task: Task, role: str, entry_point: str) -> bool:
    """Assigned to the role, or unassigned and the role is the room's entry point."""
    return task.assigned_to == role or (task.assigned_to is None and role == entry_point)


async def load_room(tx: AsyncSession, caller: Caller, chatroom_id: str, *, lock: bool) -> Chatroom:
    """The caller's room. Someone else's room answers exactly like a missing one."""
    room_id = validation.entity_id(chatroom_id, kind="chatroom")
    if caller.scope_chatroom_id is not None and room_id != caller.scope_chatroom_id:
        room_id = uuid.UUID(int=0)  # an agent token sees one room; others look missing
    query = select(Chatroom).where(Chatroom.id == room_id, Chatroom.owner_id == caller.user_id)
    if lock:
        query = query.with_for_update()
    room = (await tx.exec(query)).first()
    if room is None:
        raise NotFound(
            f"No chatroom with id {chatroom_id!r} is visible to you. "
            "List yours with the chatrooms query (or `chatroom list`)."
        )
    return room


def team_role(room: Chatroom, value: str, *, field: str = "role", allow_user: bool = False) -> str:
    role = validation.role(value, field=field)
    if role in room.team_roles or (allow_user and role == USER_ROLE):
        return role
    allowed = [*room.team_roles, USER_ROLE] if allow_user else list(room.team_roles)
    raise BadInput(
        f"{field} {role!r} is not in this room's team. Use one of: {', '.join(allowed)}.",
        field=field,
        allowed=allowed,
    )


def acting_role(
    room: Chatroom, caller: Caller, value: str, *, field: str = "role", allow_user: bool = False
) -> str:
    """The role the caller acts as: a team role (or `user`), and the token's own role if the
    token is an agent's."""
    role = team_role(room, value, field=field, allow_user=allow_user)
    if caller.scope_role is not None and role != caller.scope_role:
        raise Forbidden(
            f"This agent token acts only as {caller.scope_role!r}; it cannot act as {role!r}. "
            "Use the token minted for that role, or the room owner's login."
        )
    return role


def require_owner(caller: Caller) -> None:
    """Room management and speaking as the user are the owner's, never an agent token's."""
    if caller.is_agent:
        raise Forbidden(
            "An agent token can only wait, claim, classify and hand off as its role. Ask the "
            "room owner to do this."
        )


def require_open(room: Chatroom) -> None:
    if room.status == RoomStatus.COMPLETED:
        raise Conflict(
            "This chatroom is completed and takes no new work. Create a new room for new work."
        )


async def room_updated(tx: AsyncSession, room: Chatroom) -> None:
    room.updated_at = utcnow()
    append_event(tx, room, EventKind.ROOM_UPDATED, {"room": snapshot(room)})


# --- participants ---------------------------------------------------------------------------


async def participant(tx: AsyncSession, room: Chatroom, role: str) -> Participant:
    found = (
        await tx.exec(
            select(Participant).where(Participant.chatroom_id == room.id, Participant.role == role)
        )
    ).first()
    if found is None:  # every team role gets its row when the room is created
        raise NotFound(f"Role {role!r} has no participant in this room.")
    return found


async def set_participant(
    tx: AsyncSession,
    room: Chatroom,
    role: str,
    status: ParticipantStatus,
    *,
    seen_at: datetime | None = None,
) -> Participant:
    row = await participant(tx, room, role)
    changed = row.status != status.value
    row.status = status.value
    if seen_at is not None:
        row.last_seen_at = seen_at
    row.updated_at = utcnow()
    tx.add(row)
    if changed or seen_at is not None:
        append_event(tx, room, EventKind.PARTICIPANT_UPDATED, {"participant": snapshot(row)})
    return row


# --- messages -------------------------------------------------------------------------------


async def insert_message(
    tx: AsyncSession,
    room: Chatroom,
    *,
    sender_role: str,
    content: str,
    type: MessageType,
    target_role: str | None = None,
) -> Message:
    room.last_message_seq += 1
    message = Message(
        chatroom_id=room.id,
        seq=room.last_message_seq,
        sender_role=sender_role,
        target_role=target_role,
        content=content,
        type=type.value,
    )
    tx.add(message)
    tx.add(room)
    await tx.flush()
    append_event(tx, room, EventKind.MESSAGE_CREATED, {"message": snapshot(message)})
    return message


# --- tasks ----------------------------------------------------------------------------------


async def active_task(tx: AsyncSession, room: Chatroom) -> Task | None:
    """The room's one pending or in-progress task (the partial unique index allows no second)."""
    return (
        await tx.exec(
            select(Task)
            .where(Task.chatroom_id == room.id, col(Task.status).in_(ACTIVE_TASK_STATUSES))
            .with_for_update()
        )
    ).first()


async def load_task(tx: AsyncSession, room: Chatroom, task_id: str) -> Task:
    tid = validation.entity_id(task_id, kind="task")
    task = (
        await tx.exec(
            select(Task).where(Task.id == tid, Task.chatroom_id == room.id).with_for_update()
        )
    ).first()
    if task is None:
        raise NotFound(
            f"No task with id {task_id!r} in this chatroom. List them with the tasks query "
            "(or `chatroom backlog list`)."
        )
    return task


async def insert_task(
    tx: AsyncSession,
    room: Chatroom,
    *,
    status: TaskStatus,
    content: str,
    created_by: str,
    assigned_to: str | None = None,
    source_message: Message | None = None,
    origin_message_id: uuid.UUID | None = None,
) -> Task:
    task = Task(
        chatroom_id=room.id,
        status=status.value,
        content=content,
        created_by=created_by,
        assigned_to=assigned_to,
        source_message_id=source_message.id if source_message else None,
        origin_message_id=origin_message_id,
        queue_position=next_queue_position(room) if status == TaskStatus.QUEUED else None,
    )
    tx.add(task)
    await tx.flush()
    if source_message is not None:
        source_message.task_id = task.id
        tx.add(source_message)
        await tx.flush()
        refresh_pending(tx, "message", source_message)
    append_event(tx, room, EventKind.TASK_CREATED, {"task": snapshot(task)})
    return task


def next_queue_position(room: Chatroom) -> int:
    room.next_queue_position += 1
    return room.next_queue_position


async def set_task_status(tx: AsyncSession, room: Chatroom, task: Task, status: TaskStatus) -> Task:
    """Every task status change goes through here (so the log always sees it)."""
    now = utcnow()
    task.status = status.value
    task.updated_at = now
    if status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
        task.completed_at = now
    if status != TaskStatus.IN_PROGRESS:
        task.lease_expires_at = None
    # A position means "place in the queue": only queued tasks have one.
    task.queue_position = next_queue_position(room) if status == TaskStatus.QUEUED else None
    return await task_changed(tx, room, task)


async def task_changed(tx: AsyncSession, room: Chatroom, task: Task) -> Task:
    """Persist an edited task and log it as TASK_UPDATED."""
    task.updated_at = utcnow()
    tx.add(task)
    await tx.flush()
    append_event(tx, room, EventKind.TASK_UPDATED, {"task": snapshot(task)})
    return task


async def activate_or_queue(tx: AsyncSession, room: Chatroom, task: Task) -> Task:
    """New work for the room: it takes the baton if nobody holds it, else joins the queue."""
    status = TaskStatus.QUEUED if await active_task(tx, room) else TaskStatus.PENDING
    return await set_task_status(tx, room, task, status)


async def promote_next(tx: AsyncSession, room: Chatroom) -> Task | None:
    """The baton is free: the oldest queued task (lowest position) becomes pending."""
    if await active_task(tx, room) is not None:
        return None
    nxt = (
        await tx.exec(
            select(Task)
            .where(Task.chatroom_id == room.id, Task.status == TaskStatus.QUEUED)
            .order_by(col(Task.queue_position))
            .limit(1)
            .with_for_update()
        )
    ).first()
    if nxt is None:
        return None
    return await set_task_status(tx, room, nxt, TaskStatus.PENDING)


async def expire_lapsed_lease(tx: AsyncSession, room: Chatroom) -> Task | None:
    """A holder that went silent past its lease gives the task back to its role (SPEC §2.7)."""
    task = await active_task(tx, room)
    now = utcnow()
    if (
        task is None
        or task.status != TaskStatus.IN_PROGRESS
        or task.lease_expires_at is None
        or task.lease_expires_at > now
    ):
        return None
    holder = task.assigned_to
    await set_task_status(tx, room, task, TaskStatus.PENDING)
    if holder is not None:
        await set_participant(tx, room, holder, ParticipantStatus.IDLE)
    return task
