"""What the live subscriptions deliver. The subscription generators (schema layer) call these
in short transactions whenever they are woken; every answer is read from the tables, so a
missed notification can delay a delivery but never lose one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import (
    Chatroom,
    Message,
    MessageType,
    Participant,
    ParticipantStatus,
    Task,
    TaskStatus,
    utcnow,
)
from chatroom.resolvers import state
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.tasks import routable_to


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
    role: str
    waiter_id: uuid.UUID
    message_cursor: int
    first_poll: bool = True
    delivered: set[tuple[uuid.UUID, int]] = field(default_factory=set)


async def register_waiter(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, role: str
) -> Waiter:
    """Become the role's one waiter (superseding any other, on any process) and mark the role
    present: WAITING, or ACTIVE if it already holds a task (its agent restarted)."""
    room = await state.load_room(tx, caller, chatroom_id, lock=True)
    who = state.acting_role(room, caller, role)
    await state.expire_lapsed_lease(tx, room)
    task = await state.active_task(tx, room)
    holds = task is not None and task.status == TaskStatus.IN_PROGRESS and task.assigned_to == who
    row = await state.participant(tx, room, who)
    row.waiter_id = uuid.uuid4()
    status = ParticipantStatus.ACTIVE if holds else ParticipantStatus.WAITING
    # Always logged (seen_at), so an older waiter on any process wakes and sees it lost.
    await state.set_participant(tx, room, who, status, seen_at=utcnow())
    return Waiter(room.id, who, row.waiter_id, message_cursor=room.last_message_seq)


async def next_deliveries(tx: AsyncSession, caller: Caller, waiter: Waiter) -> list[Delivery]:
    """What is due to this waiter now. SUPERSEDED and INTERRUPT are final: the wait ends."""
    room = await _room(tx, caller, waiter.room_id)
    row = await state.participant(tx, room, waiter.role)
    if row.waiter_id != waiter.waiter_id:
        return [Delivery(DeliveryKind.SUPERSEDED)]
    # An interrupt ends the wait: everyone was set idle and told to stop. The interrupted
    # task is pending again and comes back when the agent next waits.
    interrupt = (
        await tx.exec(
            select(Message)
            .where(
                Message.chatroom_id == room.id,
                Message.seq > waiter.message_cursor,
                Message.type == MessageType.INTERRUPT,
            )
            .order_by(col(Message.seq).desc())
            .limit(1)
        )
    ).first()
    waiter.message_cursor = room.last_message_seq
    if interrupt is not None:
        return [Delivery(DeliveryKind.INTERRUPT, message=interrupt)]
    out: list[Delivery] = []
    task = (
        await tx.exec(
            select(Task).where(
                Task.chatroom_id == room.id,
                col(Task.status).in_([TaskStatus.PENDING, TaskStatus.IN_PROGRESS]),
            )
        )
    ).first()
    first_poll, waiter.first_poll = waiter.first_poll, False
    if task is None:
        return out
    key = (task.id, task.attempt)
    held = task.status == TaskStatus.IN_PROGRESS and task.assigned_to == waiter.role
    claimable = task.status == TaskStatus.PENDING and routable_to(task, waiter.role, room)
    # A held task is re-delivered only to a fresh waiter (the restarted agent), never to the
    # waiter whose own delivery led to the claim.
    if (claimable or (held and first_poll)) and key not in waiter.delivered:
        waiter.delivered.add(key)
        source = await tx.get(Message, task.source_message_id) if task.source_message_id else None
        out.append(Delivery(DeliveryKind.TASK, task=task, message=source, resumed=held))
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
    row = await state.participant(tx, room, waiter.role)
    if row.waiter_id == waiter.waiter_id:
        await _forget_waiter(tx, room, row, seen_at=utcnow())


async def _forget_waiter(
    tx: AsyncSession, room: Chatroom, row: Participant, *, seen_at: datetime | None = None
) -> None:
    """The role has no live waiter any more: if it was only waiting, it is now idle."""
    row.waiter_id = None
    tx.add(row)
    if row.status == ParticipantStatus.WAITING:
        await state.set_participant(tx, room, row.role, ParticipantStatus.IDLE, seen_at=seen_at)


async def open_room_feed(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, after_seq: int | None
) -> tuple[uuid.UUID, int]:
    """Authorise a roomEvents subscription; returns (room id, starting cursor). Without a
    cursor the feed starts live, after the newest event."""
    room = await state.load_room(tx, caller, chatroom_id, lock=False)
    head = room.last_event_seq
    start = head if after_seq is None else max(0, min(after_seq, head))
    return room.id, start


async def _room(tx: AsyncSession, caller: Caller, room_id: uuid.UUID) -> Chatroom:
    return await state.load_room(tx, caller, str(room_id), lock=False)


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
    return await state.expire_lapsed_lease(tx, room) if room is not None else None


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
    row = await state.participant(tx, room, role)
    if row.waiter_id is None or row.last_seen_at is None:
        return
    if row.last_seen_at < utcnow() - silent_for:
        await _forget_waiter(tx, room, row)
