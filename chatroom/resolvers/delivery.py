"""What the taskAvailable subscription delivers (its life around this: chatroom.resolvers.waiting).

A waiter starts from the tables (`register_waiter`: what is due right now, including a task its
role already holds, read in the transaction that registers it). After that it follows the
room's event log (`due_from_events`): every change to a task, message or participant is logged
in the transaction that made it, with the row as that change left it, so the events after the
waiter's cursor say everything that happened since, in commit order. The log is read once per
announcement for all subscribers of the room in this process (chatroom.db.feed), so waking a
waiter costs no query of its own.
A missed notification can delay a delivery but never lose one: the log is the source."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import (
    Chatroom,
    EventKind,
    Message,
    MessageType,
    Participant,
    ParticipantStatus,
    RoomEvent,
    Task,
    TaskStatus,
    utcnow,
)
from chatroom.resolvers import access, writers
from chatroom.resolvers.auth import Caller


class DeliveryKind(StrEnum):
    TASK = "task"
    INTERRUPT = "interrupt"
    SUPERSEDED = "superseded"


@dataclass
class Delivery:
    kind: DeliveryKind
    task: Task | None = None
    message: Message | None = None
    resumed: bool = False


@dataclass
class Waiter:
    """One taskAvailable subscription: its identity and what it has already delivered."""

    room_id: uuid.UUID
    entry_point: str
    role: str
    waiter_id: uuid.UUID
    event_cursor: int  # the newest room event this waiter has taken into account
    delivered: set[tuple[uuid.UUID, int]] = field(default_factory=set)

    def claimable(self, task: Task) -> bool:
        """Pending for this role and not yet delivered to this waiter."""
        return (
            task.status == TaskStatus.PENDING
            and access.routable_to(task, self.role, self.entry_point)
            and (task.id, task.attempt) not in self.delivered
        )


async def register_waiter(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, role: str
) -> tuple[Waiter, list[Delivery]]:
    """Become the role's one waiter (superseding any other, on any process), mark the role
    present (WAITING, or ACTIVE if it already holds a task: its agent restarted), and say what
    is due to it right now: a task the role can claim, or the one it holds.

    One transaction under the room's lock, so the tables read here and the log after the
    waiter's cursor (`due_from_events`) meet exactly: every later change commits after this
    one and is logged after the cursor. That is also why nothing final can be due yet: a newer
    waiter or an interrupt would be a later change, and reaches the waiter through the log."""
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    who = access.acting_role(room, caller, role)
    await writers.expire_lapsed_lease(tx, room)
    task = await writers.active_task(tx, room)
    holds = task is not None and task.status == TaskStatus.IN_PROGRESS and task.assigned_to == who
    row = await writers.participant(tx, room, who)
    row.waiter_id = uuid.uuid4()
    status = ParticipantStatus.ACTIVE if holds else ParticipantStatus.WAITING
    # Always logged (seen_at), so an older waiter on any process wakes and sees it lost.
    await writers.set_participant(tx, room, who, status, seen_at=utcnow())
    waiter = Waiter(room.id, room.entry_point, who, row.waiter_id, event_cursor=room.last_event_seq)
    due: list[Delivery] = []
    # A held task is re-delivered only here, to a fresh waiter (the restarted agent), never
    # later to the waiter whose own delivery led to the claim.
    if task is not None and (holds or waiter.claimable(task)):
        waiter.delivered.add((task.id, task.attempt))
        source = await tx.get(Message, task.source_message_id) if task.source_message_id else None
        due.append(Delivery(DeliveryKind.TASK, task=task, message=source, resumed=holds))
    return waiter, due


MessageLoader = Callable[[uuid.UUID], Awaitable[Message | None]]


async def due_from_events(
    waiter: Waiter, events: Sequence[RoomEvent], load_message: MessageLoader
) -> list[Delivery]:
    """What the room's events after the waiter's cursor make due, decided from the logged
    rows: SUPERSEDED when another waiter took the role, INTERRUPT for an interrupt message
    (both final), else a task that is now claimable by the role. A task's source message is
    usually logged beside it (same transaction); otherwise `load_message` reads it."""
    messages: dict[Any, dict[str, Any]] = {}
    tasks: dict[Any, dict[str, Any]] = {}  # each task's newest state, oldest change first
    for event in events:
        waiter.event_cursor = max(waiter.event_cursor, event.seq)
        payload = event.payload
        participant = payload.get("participant") or {}
        ours = participant.get("role") == waiter.role
        if ours and participant.get("waiter_id") != str(waiter.waiter_id):
            return [Delivery(DeliveryKind.SUPERSEDED)]
        message = payload.get("message")
        if message:
            messages[message["id"]] = message
            created = event.kind == EventKind.MESSAGE_CREATED
            if created and message["type"] == MessageType.INTERRUPT:
                return [Delivery(DeliveryKind.INTERRUPT, message=Message.model_validate(message))]
        task = payload.get("task")
        if task:
            tasks.pop(task["id"], None)
            tasks[task["id"]] = task
    out: list[Delivery] = []
    for row in tasks.values():
        task = Task.model_validate(row)
        if not waiter.claimable(task):
            continue
        waiter.delivered.add((task.id, task.attempt))
        source = None
        if task.source_message_id is not None:
            logged = messages.get(str(task.source_message_id))
            if logged is not None:
                source = Message.model_validate(logged)
            else:
                source = await load_message(task.source_message_id)
        out.append(Delivery(DeliveryKind.TASK, task=task, message=source))
    return out


async def touch_waiter(tx: AsyncSession, waiter: Waiter) -> bool:
    """Keep the role present while its waiter is open. False if it was superseded."""
    result = await tx.exec(
        update(Participant)
        .where(
            col(Participant.chatroom_id) == waiter.room_id,
            col(Participant.role) == waiter.role,
            col(Participant.waiter_id) == waiter.waiter_id,
        )
        .values(last_seen_at=utcnow())
    )
    return bool(result.rowcount)


async def release_waiter(tx: AsyncSession, waiter: Waiter) -> None:
    """The waiter ended. If it is still the role's waiter, the role is no longer waiting."""
    room = (
        await tx.exec(select(Chatroom).where(Chatroom.id == waiter.room_id).with_for_update())
    ).first()
    if room is None:
        return
    row = await writers.participant(tx, room, waiter.role)
    if row.waiter_id == waiter.waiter_id:
        await _forget_waiter(tx, room, row, seen_at=utcnow())


async def _forget_waiter(
    tx: AsyncSession, room: Chatroom, row: Participant, *, seen_at: datetime | None = None
) -> None:
    """The role has no live waiter any more: if it was only waiting, it is now idle."""
    row.waiter_id = None
    tx.add(row)
    if row.status == ParticipantStatus.WAITING:
        await writers.set_participant(tx, room, row.role, ParticipantStatus.IDLE, seen_at=seen_at)


async def open_room_feed(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, after_seq: int | None
) -> tuple[uuid.UUID, int]:
    """Authorise a roomEvents subscription; returns (room id, starting cursor). Without a
    cursor the feed starts live, after the newest event."""
    room = await access.load_room(tx, caller, chatroom_id, lock=False)
    head = room.last_event_seq
    start = head if after_seq is None else max(0, min(after_seq, head))
    return room.id, start


async def rooms_with_lapsed_leases(tx: AsyncSession, *, limit: int = 100) -> list[uuid.UUID]:
    rows = await tx.exec(
        select(Task.chatroom_id)
        .where(Task.status == TaskStatus.IN_PROGRESS, col(Task.lease_expires_at) < utcnow())
        .limit(limit)
    )
    return list(rows.all())


async def expire_lease_in_room(tx: AsyncSession, room_id: uuid.UUID) -> Task | None:
    """For the server's sweeper: no caller, and a room another process is writing is skipped
    (it expires leases itself inside its own transaction)."""
    room = (
        await tx.exec(
            select(Chatroom).where(Chatroom.id == room_id).with_for_update(skip_locked=True)
        )
    ).first()
    return await writers.expire_lapsed_lease(tx, room) if room is not None else None


async def stale_waiters(tx: AsyncSession, *, silent_for: timedelta) -> list[tuple[uuid.UUID, str]]:
    """(room, role) of registered waiters that stopped refreshing their presence."""
    rows = await tx.exec(
        select(Participant.chatroom_id, Participant.role).where(
            col(Participant.waiter_id).is_not(None),
            col(Participant.last_seen_at) < utcnow() - silent_for,
        )
    )
    return [(room_id, role) for room_id, role in rows.all()]


async def drop_stale_waiter(
    tx: AsyncSession, room_id: uuid.UUID, role: str, silent_for: timedelta
) -> None:
    """Forget a dead process's waiter: the role is no longer waiting (re-checked under the
    room's lock; a room another process is writing is left for the next round)."""
    room = (
        await tx.exec(
            select(Chatroom).where(Chatroom.id == room_id).with_for_update(skip_locked=True)
        )
    ).first()
    if room is None:
        return
    row = await writers.participant(tx, room, role)
    if row.waiter_id is None or row.last_seen_at is None:
        return
    if row.last_seen_at < utcnow() - silent_for:
        await _forget_waiter(tx, room, row)
