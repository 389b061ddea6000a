"""Tasks: the atomic claim, the backlog, and the owner's queue controls."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.config import settings
from chatroom.db.models import (
    Chatroom,
    Message,
    Participant,
    ParticipantStatus,
    Task,
    TaskStatus,
    utcnow,
)
from chatroom.resolvers import access, faults, idempotency, validation, writers
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import BadInput, Conflict, TaskNotClaimable
from chatroom.resolvers.validation import USER_ROLE


@dataclass
class ClaimOutcome(idempotency.Outcome):
    success: bool
    task: Task
    message: Message | None
    participant: Participant | None


async def claim_task(
    tx: AsyncSession,
    caller: Caller,
    *,
    chatroom_id: str,
    task_id: str,
    role: str,
    idempotency_key: str | None = None,
) -> ClaimOutcome:
    """pending -> in_progress for `role`, its source message claimed, the participant active:
    one transaction. Claimers queue on the room lock, so exactly one of any number wins; the
    rest see the task already taken and get success=false."""
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    who = access.acting_role(room, caller, role)
    key = validation.idempotency_key(idempotency_key)
    request = {"room": str(room.id), "task": task_id.strip().lower(), "role": who}
    keyed = await idempotency.begin(tx, caller, "claimTask", key, request, ClaimOutcome)
    if keyed.replayed is not None:
        return keyed.replayed
    await writers.expire_lapsed_lease(tx, room)
    task = await writers.load_task(tx, room, task_id)
    if task.status != TaskStatus.PENDING:
        if task.started_at is None:
            raise TaskNotClaimable(
                f"Task {task_id} is {task.status} and was never started, so it cannot be "
                "claimed. Wait for work with the taskAvailable subscription "
                "(or `chatroom wait-for-message`).",
                status=task.status,
            )
        outcome = ClaimOutcome(False, task, await _source(tx, task), None)
    elif not access.routable_to(task, who, room.entry_point):
        raise TaskNotClaimable(
            f"Task {task_id} is for {task.assigned_to or room.entry_point}, not {who}. "
            "Claim only tasks delivered to your role.",
            assignedTo=task.assigned_to or room.entry_point,
        )
    else:
        started = await writers.start_task(tx, room, task, who, lease=settings().task_lease)
        # The writes are one statement; a fault at any of these points rolls all of it back.
        faults.checkpoint("claim.started")
        faults.checkpoint("claim.message")
        faults.checkpoint("claim.participant")
        outcome = ClaimOutcome(True, started.task, started.message, started.participant)
    await keyed.record(outcome)
    faults.checkpoint("claim.recorded")
    return outcome


async def _source(tx: AsyncSession, task: Task) -> Message | None:
    return await tx.get(Message, task.source_message_id) if task.source_message_id else None


def renewed_lease() -> datetime:
    """When a lease renewed now ends: any call made as the holding role proves it is alive."""
    return utcnow() + settings().task_lease


async def pending_tasks(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, role: str
) -> list[Task]:
    room = await access.load_room(tx, caller, chatroom_id, lock=False)
    who = access.acting_role(room, caller, role)
    rows = await tx.exec(
        select(Task).where(Task.chatroom_id == room.id, Task.status == TaskStatus.PENDING)
    )
    return [t for t in rows.all() if access.routable_to(t, who, room.entry_point)]


_LIST_ORDER = {
    TaskStatus.IN_PROGRESS: 0,
    TaskStatus.PENDING: 1,
    TaskStatus.QUEUED: 2,
    TaskStatus.BACKLOG: 3,
    TaskStatus.COMPLETED: 4,
    TaskStatus.CANCELLED: 5,
}
MAX_TASK_LIST = 500


async def list_tasks(
    tx: AsyncSession,
    caller: Caller,
    *,
    chatroom_id: str,
    statuses: list[TaskStatus] | None,
    limit: int = 100,
) -> list[Task]:
    """Active first, then the queue in order, the backlog, and the newest finished tasks."""
    room = await access.load_room(tx, caller, chatroom_id, lock=False)
    wanted = statuses or list(TaskStatus)
    size = max(1, min(limit, MAX_TASK_LIST))
    result: list[Task] = []
    for status in sorted(set(wanted), key=lambda s: _LIST_ORDER[s]):
        if len(result) >= size:
            break
        query = select(Task).where(Task.chatroom_id == room.id, Task.status == status)
        if status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            query = query.order_by(col(Task.updated_at).desc())
        else:
            query = query.order_by(col(Task.queue_position), col(Task.created_at))
        result.extend((await tx.exec(query.limit(size - len(result)))).all())
    return result


async def task_counts(tx: AsyncSession, caller: Caller, *, chatroom_id: str) -> dict[str, int]:
    room = await access.load_room(tx, caller, chatroom_id, lock=False)
    rows = await tx.exec(
        select(Task.status, func.count())
        .where(Task.chatroom_id == room.id)
        .group_by(col(Task.status))
    )
    counts = {s.value: 0 for s in TaskStatus}
    counts.update({status: n for status, n in rows.all()})
    return counts


async def tasks_by_id(tx: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Task]:
    rows = await tx.exec(select(Task).where(col(Task.id).in_(ids)))
    return {t.id: t for t in rows.all()}


# --- the owner's controls -------------------------------------------------------------------


async def add_backlog_task(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, content: str
) -> Task:
    access.require_owner(caller)
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    access.require_open(room)
    body = validation.content(content)
    return await writers.insert_task(
        tx, room, status=TaskStatus.BACKLOG, content=body, created_by=USER_ROLE
    )


async def _owned_task(
    tx: AsyncSession, caller: Caller, chatroom_id: str, task_id: str
) -> tuple[Chatroom, Task]:
    access.require_owner(caller)
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    await writers.expire_lapsed_lease(tx, room)
    return room, await writers.load_task(tx, room, task_id)


def _refuse(task: Task, action: str, allowed: tuple[TaskStatus, ...]) -> Conflict:
    names = ", ".join(s.value for s in allowed)
    return Conflict(
        f"Cannot {action} task {task.id}: it is {task.status}; only {names} tasks can be.",
        status=task.status,
    )


async def update_task(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, task_id: str, content: str
) -> Task:
    """Edit queued or backlog work. The agent is shown the task's content, so edits count."""
    room, task = await _owned_task(tx, caller, chatroom_id, task_id)
    editable = (TaskStatus.QUEUED, TaskStatus.BACKLOG)
    if task.status not in editable:
        raise _refuse(task, "edit", editable)
    return await writers.task_changed(tx, room, task, content=validation.content(content))


async def move_task_to_queue(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, task_id: str
) -> Task:
    room, task = await _owned_task(tx, caller, chatroom_id, task_id)
    access.require_open(room)
    if task.status != TaskStatus.BACKLOG:
        raise _refuse(task, "move to the queue", (TaskStatus.BACKLOG,))
    return await writers.activate_or_queue(tx, room, task)


async def complete_task(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, task_id: str, force: bool = False
) -> Task:
    """Queued or backlog work can be marked done; the active task needs `force` and then
    releases the baton to the next queued task."""
    room, task = await _owned_task(tx, caller, chatroom_id, task_id)
    was_active = task.status in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS)
    if task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
        raise _refuse(task, "complete", (TaskStatus.QUEUED, TaskStatus.BACKLOG))
    if was_active and not force:
        raise BadInput(
            f"Task {task.id} is {task.status}: an agent may be working on it. Pass force: true "
            "to complete it anyway.",
            field="force",
        )
    return await _finish(tx, room, task, TaskStatus.COMPLETED, was_active)


async def cancel_task(tx: AsyncSession, caller: Caller, *, chatroom_id: str, task_id: str) -> Task:
    room, task = await _owned_task(tx, caller, chatroom_id, task_id)
    if task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
        raise _refuse(
            task,
            "cancel",
            (TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.QUEUED, TaskStatus.BACKLOG),
        )
    was_active = task.status in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS)
    return await _finish(tx, room, task, TaskStatus.CANCELLED, was_active)


async def _finish(
    tx: AsyncSession, room: Chatroom, task: Task, status: TaskStatus, was_active: bool
) -> Task:
    holder = task.assigned_to if task.status == TaskStatus.IN_PROGRESS else None
    await writers.set_task_status(tx, room, task, status)
    if holder is not None:
        await writers.set_participant(tx, room, holder, ParticipantStatus.IDLE)
    if was_active:
        await writers.promote_next(tx, room)
    return task


async def release_task(tx: AsyncSession, caller: Caller, *, chatroom_id: str, task_id: str) -> Task:
    """The owner takes a task back from a silent agent: in_progress -> pending, same role."""
    room, task = await _owned_task(tx, caller, chatroom_id, task_id)
    if task.status != TaskStatus.IN_PROGRESS:
        raise _refuse(task, "release", (TaskStatus.IN_PROGRESS,))
    holder = task.assigned_to
    await writers.set_task_status(tx, room, task, TaskStatus.PENDING)
    if holder is not None:
        await writers.set_participant(tx, room, holder, ParticipantStatus.IDLE)
    return task
