"""The row writers every state change is made of. Each one writes its row AND appends the
room event describing it, so no caller can change state without the log seeing it.

Callers lock the room row first (`access.load_room(..., lock=True)`): that single lock orders every
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
    Task,
    TaskStatus,
    utcnow,
)
from chatroom.resolvers import validation
from chatroom.resolvers.errors import NotFound


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


async def active_task(tx: AsyncSession, room: Chatroom, *, lock: bool = True) -> Task | None:
    """The room's one pending or in-progress task (the partial unique index allows no second),
    locked for a writer; readers pass lock=False."""
    query = select(Task).where(
        Task.chatroom_id == room.id, col(Task.status).in_(ACTIVE_TASK_STATUSES)
    )
    return (await tx.exec(query.with_for_update() if lock else query)).first()


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
