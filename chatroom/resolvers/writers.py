"""The row writers every state change is made of. Each one writes its row AND appends the
room event describing it, so no caller can change state without the log seeing it.

Callers lock the room row first (`access.load_room(..., lock=True)`): that single lock orders every
writer of a room, which keeps the per-room counters gapless; the database constraints back it.

Writes are single statements (an UPDATE ... RETURNING instead of a SELECT and an ORM flush),
and the three hot mutations (sendMessage, claimTask, sendHandoff) make all their row changes in
ONE statement each (`post`, `start_task`, `pass_baton`): rows that point at each other get their
ids here, so both INSERTs sit in the same statement and the foreign keys are checked at its end.
The hot statements are fixed SQL texts (chatroom/db/hot_sql.py) sent to the driver connection
(chatroom/db/driver.py); the rest are SQLAlchemy Core. The ORM stays the model layer: rows are
SQLModel objects (built without validation, chatroom/db/rows.py, from values that are the
table's own), ORM changes a caller made are flushed before a write (as autoflush would), and a
row the session has loaded is kept in step with what the statement wrote. The room's counters
are written by the commit's final statement (chatroom/db/events.py), with the events and the
notification."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, Result, update
from sqlalchemy import select as core_select
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db import driver, hot_sql, rows
from chatroom.db.driver import flush_orm
from chatroom.db.events import (
    append_event,
    bump,
    refresh_pending,
    set_room,
    snapshot,
)
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

# Core statements name the tables, not the mapped classes: an ORM entity (or one of its
# attributes) anywhere in a statement sends its compilation through the ORM's DML plugin.
TASKS, MESSAGES = hot_sql.TASKS, hot_sql.MESSAGES

_ACTIVE = "chatroom.active_task"  # room id -> its active Task (or None), known in this tx


async def room_updated(tx: AsyncSession, room: Chatroom) -> None:
    room.updated_at = utcnow()
    append_event(tx, room, EventKind.ROOM_UPDATED, {"room": snapshot(room)})


# --- Core statements next to the ORM ------------------------------------------------------


async def _execute(tx: AsyncSession, statement: Executable) -> Result[Any]:
    """Run a Core statement in the transaction, after any ORM change a caller made."""
    await flush_orm(tx)
    connection = await tx.connection()
    return await connection.execute(statement)


def _assign(row: SQLModel, values: dict[str, Any]) -> None:
    """Set what a statement wrote on the row object, without the ORM seeing a change."""
    for name, value in values.items():
        set_committed_value(row, name, value)


def _loaded(
    tx: AsyncSession, model: type[Any], record: Any, columns: tuple[str, ...], start: int
) -> Any:
    """The row object for a slice of a driver RETURNING row (None when all NULL); a copy the
    session has loaded is kept in step and returned instead."""
    row = rows.build_from(model, record, columns, start)
    if row is None:
        return None
    loaded = tx.sync_session.identity_map.get((model, (row.id,), None))
    if loaded is not None:
        _assign(loaded, {c: getattr(row, c) for c in columns})
        return loaded
    return row


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


def _participant_params(
    room: Chatroom, role: str, status: ParticipantStatus, seen_at: datetime | None
) -> list[Any]:
    """hot_sql's participant write: room, role, status, now[, seen_at]."""
    params: list[Any] = [room.id, role, status.value, utcnow()]
    return [*params, seen_at] if seen_at is not None else params


_WAS = len(hot_sql.PARTICIPANT_COLUMNS)  # the status before, after the participant's columns


def _participant_changed(
    tx: AsyncSession,
    room: Chatroom,
    row: Participant | None,
    was: str | None,
    role: str,
    *,
    seen: bool,
) -> Participant:
    if row is None:  # every team role gets its row when the room is created
        raise NotFound(f"Role {role!r} has no participant in this room.")
    if row.status != was or seen:
        append_event(tx, room, EventKind.PARTICIPANT_UPDATED, {"participant": snapshot(row)})
    return row


async def set_participant(
    tx: AsyncSession,
    room: Chatroom,
    role: str,
    status: ParticipantStatus,
    *,
    seen_at: datetime | None = None,
) -> Participant:
    """One UPDATE ... RETURNING (no SELECT first); logged if the status changed or seen_at."""
    found = await driver.fetchrow(
        tx,
        hot_sql.SET_PARTICIPANT[seen_at is not None],
        *_participant_params(room, role, status, seen_at),
    )
    row = _loaded(tx, Participant, found, hot_sql.PARTICIPANT_COLUMNS, 0) if found else None
    was = found[_WAS] if found else None
    return _participant_changed(tx, room, row, was, role, seen=seen_at is not None)


# --- messages -------------------------------------------------------------------------------


def _new_message(
    tx: AsyncSession,
    room: Chatroom,
    *,
    sender_role: str,
    content: str,
    type: MessageType,
    target_role: str | None,
    task_id: uuid.UUID | None = None,
) -> Message:
    return rows.build(
        Message,
        {
            "chatroom_id": room.id,
            "seq": bump(tx, room, "last_message_seq"),
            "sender_role": sender_role,
            "target_role": target_role,
            "content": content,
            "type": type.value,
            "task_id": task_id,
        },
    )


async def insert_message(
    tx: AsyncSession,
    room: Chatroom,
    *,
    sender_role: str,
    content: str,
    type: MessageType,
    target_role: str | None = None,
) -> Message:
    message = _new_message(
        tx, room, sender_role=sender_role, content=content, type=type, target_role=target_role
    )
    await driver.execute(
        tx, hot_sql.INSERT_MESSAGE, *hot_sql.values(message, hot_sql.MESSAGE_COLUMNS)
    )
    append_event(tx, room, EventKind.MESSAGE_CREATED, {"message": snapshot(message)})
    return message


# --- tasks ----------------------------------------------------------------------------------


async def active_task(tx: AsyncSession, room: Chatroom, *, lock: bool = True) -> Task | None:
    """The room's one pending or in-progress task (the partial unique index allows no second),
    locked for a writer; readers pass lock=False. Read once per transaction: under the room
    lock only this transaction's writers (all below) change it, and they keep it known."""
    known: dict[uuid.UUID, Task | None] = tx.info.get(_ACTIVE, {})
    if room.id in known:
        return known[room.id]
    found = await driver.fetchrow(tx, hot_sql.ACTIVE_TASK[lock], room.id)
    task = rows.attached(tx, Task, found, hot_sql.TASK_COLUMNS) if found else None
    if lock:
        tx.info.setdefault(_ACTIVE, {})[room.id] = task
    return task


def _note_status(tx: AsyncSession, room: Chatroom, task: Task) -> None:
    """Keep the transaction's known active task in step with a task this writer changed."""
    known: dict[uuid.UUID, Task | None] = tx.info.setdefault(_ACTIVE, {})
    if task.status in ACTIVE_TASK_STATUSES:
        known[room.id] = task
    elif room.id in known and known[room.id] is not None and known[room.id].id == task.id:  # type: ignore[union-attr]
        known[room.id] = None


async def load_task(tx: AsyncSession, room: Chatroom, task_id: str) -> Task:
    tid = validation.entity_id(task_id, kind="task")
    active = tx.info.get(_ACTIVE, {}).get(room.id)
    if active is not None and active.id == tid:  # already read (and locked) in this tx
        return active
    found = await driver.fetchrow(tx, hot_sql.LOCK_TASK, tid, room.id)
    task = rows.attached(tx, Task, found, hot_sql.TASK_COLUMNS) if found else None
    if task is None:
        raise NotFound(
            f"No task with id {task_id!r} in this chatroom. List them with the tasks query "
            "(or `chatroom backlog list`)."
        )
    return task


def _new_task(
    tx: AsyncSession,
    room: Chatroom,
    *,
    status: TaskStatus,
    content: str,
    created_by: str,
    assigned_to: str | None = None,
    source_message_id: uuid.UUID | None = None,
    origin_message_id: uuid.UUID | None = None,
) -> Task:
    return rows.build(
        Task,
        {
            "chatroom_id": room.id,
            "status": status.value,
            "content": content,
            "created_by": created_by,
            "assigned_to": assigned_to,
            "source_message_id": source_message_id,
            "origin_message_id": origin_message_id,
            "queue_position": (
                next_queue_position(tx, room) if status == TaskStatus.QUEUED else None
            ),
        },
    )


def _task_created(tx: AsyncSession, room: Chatroom, task: Task) -> Task:
    _note_status(tx, room, task)
    append_event(tx, room, EventKind.TASK_CREATED, {"task": snapshot(task)})
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
    task = _new_task(
        tx,
        room,
        status=status,
        content=content,
        created_by=created_by,
        assigned_to=assigned_to,
        source_message_id=source_message.id if source_message else None,
        origin_message_id=origin_message_id,
    )
    await driver.execute(tx, hot_sql.INSERT_TASK, *hot_sql.values(task, hot_sql.TASK_COLUMNS))
    if source_message is not None:
        await _execute(
            tx, update(MESSAGES).where(MESSAGES.c.id == source_message.id).values(task_id=task.id)
        )
        _assign(source_message, {"task_id": task.id})
        refresh_pending(tx, "message", source_message)
    return _task_created(tx, room, task)


def next_queue_position(tx: AsyncSession, room: Chatroom) -> int:
    return bump(tx, room, "next_queue_position")


def _status_values(
    tx: AsyncSession, room: Chatroom, status: TaskStatus, now: datetime
) -> dict[str, Any]:
    """What a move to `status` writes: the one rule for every task status change."""
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
        values["completed_at"] = now
    if status != TaskStatus.IN_PROGRESS:
        values["lease_expires_at"] = None
    # A position means "place in the queue": only queued tasks have one.
    values["queue_position"] = (
        next_queue_position(tx, room) if status == TaskStatus.QUEUED else None
    )
    return values


def _task_params(task: Task) -> list[Any]:
    """hot_sql's task write: the id, then the task's whole state as the object now holds it."""
    return [task.id, *hot_sql.values(task, hot_sql.TASK_STATE)]


async def _write_task(tx: AsyncSession, task: Task, values: dict[str, Any]) -> None:
    _assign(task, values)
    await driver.execute(tx, hot_sql.WRITE_TASK, *_task_params(task))


def _task_updated(tx: AsyncSession, room: Chatroom, task: Task) -> Task:
    _note_status(tx, room, task)
    append_event(tx, room, EventKind.TASK_UPDATED, {"task": snapshot(task)})
    return task


async def set_task_status(
    tx: AsyncSession, room: Chatroom, task: Task, status: TaskStatus, **values: Any
) -> Task:
    """Every task status change goes through here (so the log always sees it); `values` are
    other columns written with it."""
    values |= _status_values(tx, room, status, utcnow())
    await _write_task(tx, task, values)
    return _task_updated(tx, room, task)


async def task_changed(tx: AsyncSession, room: Chatroom, task: Task, **values: Any) -> Task:
    """Persist an edit of a task (`values`) and log it as TASK_UPDATED."""
    await _write_task(tx, task, {**values, "updated_at": utcnow()})
    return _task_updated(tx, room, task)


async def activate_or_queue(tx: AsyncSession, room: Chatroom, task: Task) -> Task:
    """New work for the room: it takes the baton if nobody holds it, else joins the queue."""
    status = TaskStatus.QUEUED if await active_task(tx, room) else TaskStatus.PENDING
    return await set_task_status(tx, room, task, status)


def _oldest_queued(room: Chatroom) -> Any:
    return (
        core_select(TASKS.c.id)
        .where(TASKS.c.chatroom_id == room.id, TASKS.c.status == TaskStatus.QUEUED.value)
        .order_by(TASKS.c.queue_position)
        .limit(1)
        .correlate(None)  # its own scan of tasks, also inside an UPDATE of tasks
    )


async def promote_next(tx: AsyncSession, room: Chatroom) -> Task | None:
    """The baton is free: the oldest queued task (lowest position) becomes pending."""
    if await active_task(tx, room) is not None:
        return None
    nxt = (
        await tx.exec(
            select(Task)
            .where(col(Task.id) == _oldest_queued(room).scalar_subquery())
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


async def classify_origin(
    tx: AsyncSession,
    room: Chatroom,
    origin: Message,
    values: dict[str, Any],
    task: Task,
    *,
    lease: datetime,
) -> Message:
    """classifyTask's writes, one statement: the chain's origin message classified and the
    holder's task's lease renewed; the room remembers the origin (for the next follow-up)."""
    set_room(tx, room, "last_origin_message_id", origin.id)
    _assign(origin, values)
    _assign(task, {"lease_expires_at": lease})
    await driver.execute(
        tx,
        hot_sql.CLASSIFY,
        origin.id,
        *hot_sql.values(origin, hot_sql.CLASSIFIED_STATE),
        *_task_params(task),
    )
    append_event(tx, room, EventKind.MESSAGE_UPDATED, {"message": snapshot(origin)})
    return origin


# --- the hot mutations' writes, one statement each ------------------------------------------


async def post(
    tx: AsyncSession,
    room: Chatroom,
    *,
    sender_role: str,
    content: str,
    target_role: str | None,
    task_status: TaskStatus | None,
    assigned_to: str | None = None,
) -> tuple[Message, Task | None]:
    """sendMessage's writes: the message and, for a user request (`task_status` set), the
    task made from it (its chain's origin), in one statement."""
    if task_status is None:
        message = await insert_message(
            tx,
            room,
            sender_role=sender_role,
            content=content,
            type=MessageType.MESSAGE,
            target_role=target_role,
        )
        return message, None
    task_id, message_id = uuid.uuid4(), uuid.uuid4()
    message = _new_message(
        tx,
        room,
        sender_role=sender_role,
        content=content,
        type=MessageType.MESSAGE,
        target_role=target_role,
        task_id=task_id,
    )
    message.id = message_id
    task = _new_task(
        tx,
        room,
        status=task_status,
        content=content,
        created_by=sender_role,
        assigned_to=assigned_to,
        source_message_id=message_id,
        origin_message_id=message_id,
    )
    task.id = task_id
    await driver.execute(
        tx,
        hot_sql.POST_REQUEST,
        *hot_sql.values(message, hot_sql.MESSAGE_COLUMNS),
        *hot_sql.values(task, hot_sql.TASK_COLUMNS),
    )
    append_event(tx, room, EventKind.MESSAGE_CREATED, {"message": snapshot(message)})
    return message, _task_created(tx, room, task)


@dataclass
class Started:
    task: Task
    message: Message | None
    participant: Participant


async def start_task(
    tx: AsyncSession, room: Chatroom, task: Task, role: str, *, lease: Any
) -> Started:
    """claimTask's writes, one statement: the task in progress for `role` (a new attempt with a
    fresh lease), its source message claimed, the role's participant active."""
    now = utcnow()
    values = _status_values(tx, room, TaskStatus.IN_PROGRESS, now) | {
        "assigned_to": role,
        "started_at": now,
        "attempt": task.attempt + 1,
        "lease_expires_at": now + lease,
    }
    _assign(task, values)
    found = await driver.fetchrow(
        tx,
        hot_sql.START_TASK,
        *_task_params(task),
        role,
        task.source_message_id,
        *_participant_params(room, role, ParticipantStatus.ACTIVE, now),
    )
    _task_updated(tx, room, task)
    row = _loaded(tx, Participant, found, hot_sql.PARTICIPANT_COLUMNS, 0) if found else None
    was = found[_WAS] if found else None
    message = _loaded(tx, Message, found, hot_sql.MESSAGE_COLUMNS, _WAS + 1) if found else None
    participant_row = _participant_changed(tx, room, row, was, role, seen=True)
    return Started(task, message, participant_row)


@dataclass
class Passed:
    completed: Task
    message: Message
    new_task: Task | None
    promoted: Task | None
    sender: Participant


async def pass_baton(
    tx: AsyncSession,
    room: Chatroom,
    task: Task,
    *,
    sender: str,
    target: str,
    content: str,
    to_user: bool,
) -> Passed:
    """sendHandoff's writes, one statement: the sender's task completed, the handoff message,
    and either a pending task for the target (same chain) or, back to the user, the oldest
    queued task promoted to pending; the sender waiting. The completion runs first (the new
    task and the promotion read from it): the room has one active task at a time."""
    now = utcnow()
    _assign(task, _status_values(tx, room, TaskStatus.COMPLETED, now))
    new_task: Task | None = None
    new_id = None if to_user else uuid.uuid4()
    message = _new_message(
        tx,
        room,
        sender_role=sender,
        content=content,
        type=MessageType.HANDOFF,
        target_role=target,
        task_id=new_id,
    )
    message.id = uuid.uuid4()
    head = [*_task_params(task), *hot_sql.values(message, hot_sql.MESSAGE_COLUMNS)]
    sender_params = _participant_params(room, sender, ParticipantStatus.WAITING, None)
    if not to_user:
        new_task = _new_task(
            tx,
            room,
            status=TaskStatus.PENDING,
            content=content,
            created_by=sender,
            assigned_to=target,
            source_message_id=message.id,
            origin_message_id=task.origin_message_id,
        )
        new_task.id = new_id  # type: ignore[assignment]
        next_work = hot_sql.values(new_task, hot_sql.TASK_COLUMNS)
        found = await driver.fetchrow(tx, hot_sql.PASS_TO_AGENT, *head, *next_work, *sender_params)
    else:
        promote = _status_values(tx, room, TaskStatus.PENDING, now)
        next_work = [promote[c] for c in hot_sql.PROMOTED_STATE] + [room.id]
        found = await driver.fetchrow(tx, hot_sql.PASS_TO_USER, *head, *next_work, *sender_params)
    completed = _task_updated(tx, room, task)
    append_event(tx, room, EventKind.MESSAGE_CREATED, {"message": snapshot(message)})
    promoted = None
    if new_task is not None:
        _task_created(tx, room, new_task)
    elif found is not None:
        promoted = _loaded(tx, Task, found, hot_sql.TASK_COLUMNS, _WAS + 1)
        if promoted is not None:
            _task_updated(tx, room, promoted)
    row = _loaded(tx, Participant, found, hot_sql.PARTICIPANT_COLUMNS, 0) if found else None
    was = found[_WAS] if found else None
    sender_row = _participant_changed(tx, room, row, was, sender, seen=False)
    return Passed(completed, message, new_task, promoted, sender_row)
