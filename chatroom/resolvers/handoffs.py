"""The baton pass (`sendHandoff`) and the classification rule it enforces (SPEC §2.4, §2.5)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import (
    Chatroom,
    Classification,
    Message,
    Participant,
    Task,
    TaskStatus,
)
from chatroom.resolvers import access, faults, idempotency, tasks, validation, writers
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.errors import BadInput, Conflict, HandoffNotAllowed, NotTaskHolder
from chatroom.resolvers.validation import USER_ROLE

REVIEWER_ROLE = "reviewer"


@dataclass
class HandoffOutcome(idempotency.Outcome):
    message: Message
    completed_tasks: list[Task]
    new_task: Task | None
    promoted_task: Task | None
    sender: Participant


async def send_handoff(
    tx: AsyncSession,
    caller: Caller,
    *,
    chatroom_id: str,
    sender_role: str,
    content: str,
    target_role: str,
    idempotency_key: str | None = None,
) -> HandoffOutcome:
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    sender = access.acting_role(room, caller, sender_role, field="senderRole")
    target = access.team_role(room, target_role, field="targetRole", allow_user=True)
    if target == sender:
        raise BadInput(
            f"{sender} cannot hand off to itself. Hand to one of: {_targets(room, sender)}.",
            field="targetRole",
        )
    body = validation.content(content)
    key = validation.idempotency_key(idempotency_key)
    request = {"room": str(room.id), "sender": sender, "target": target, "content": body}
    keyed = await idempotency.begin(tx, caller, "sendHandoff", key, request, HandoffOutcome)
    if keyed.replayed is not None:
        return keyed.replayed

    # 1. checks: the sender holds the room's in-progress task; the rule allows the target.
    await writers.expire_lapsed_lease(tx, room)
    task = await writers.active_task(tx, room)
    if task is None or task.status != TaskStatus.IN_PROGRESS or task.assigned_to != sender:
        raise _not_holder(room, sender, task)
    if target == USER_ROLE:
        await _check_may_return_to_user(tx, room, task, sender)
    faults.checkpoint("handoff.checked")
    # 2.-6. one statement: the sender's task completed, the handoff message, the baton to the
    # target in the same chain (or, back to the user, free for the next queued request), the
    # sender ready for more work. A fault at any of these points rolls all of it back.
    passed = await writers.pass_baton(
        tx, room, task, sender=sender, target=target, content=body, to_user=target == USER_ROLE
    )
    faults.checkpoint("handoff.completed")
    faults.checkpoint("handoff.message")
    faults.checkpoint("handoff.task")
    faults.checkpoint("handoff.participant")
    outcome = HandoffOutcome(
        passed.message, [passed.completed], passed.new_task, passed.promoted, passed.sender
    )
    await keyed.record(outcome)
    faults.checkpoint("handoff.recorded")
    return outcome


def _targets(room: Chatroom, sender: str) -> str:
    return ", ".join([r for r in room.team_roles if r != sender] + [USER_ROLE])


def _not_holder(room: Chatroom, sender: str, task: Task | None) -> NotTaskHolder:
    unclaimed = (
        task is not None
        and task.status == TaskStatus.PENDING
        and task.attempt == 0
        and access.routable_to(task, sender, room.entry_point)
    )
    if unclaimed and task is not None:
        return NotTaskHolder(
            f"{sender} has not claimed task {task.id} yet. Run the wait command to take it, "
            "do the work, then hand off.",
            taskId=str(task.id),
        )
    if task is not None and task.status == TaskStatus.PENDING and task.assigned_to == sender:
        return NotTaskHolder(
            f"{sender} no longer holds task {task.id}: its claim lapsed and it is pending again. "
            "Claim it again (run the wait command), then hand off.",
            taskId=str(task.id),
        )
    if task is not None and task.status == TaskStatus.IN_PROGRESS:
        return NotTaskHolder(
            f"{sender} does not hold the room's current task ({task.assigned_to} does). Only "
            "the holder can hand off; wait for work addressed to you.",
            holder=task.assigned_to,
        )
    return NotTaskHolder(
        f"{sender} holds no task in this room, so there is nothing to hand off. Wait for work "
        "first (taskAvailable, or `chatroom wait-for-message`).",
    )


async def _check_may_return_to_user(
    tx: AsyncSession, room: Chatroom, task: Task, sender: str
) -> None:
    """A new feature (or a follow-up of one) goes back to the user only after the team's
    reviewer has completed a task in this chain. The classification belongs to the chain."""
    if REVIEWER_ROLE not in room.team_roles or sender == REVIEWER_ROLE:
        return
    origin = await tx.get(Message, task.origin_message_id) if task.origin_message_id else None
    if origin is None or origin.effective_classification != Classification.NEW_FEATURE:
        return
    if not await chain_reviewed(tx, origin.id):
        raise HandoffNotAllowed(
            "This chain is a new feature: it goes back to the user only after review. Hand off "
            f'to {REVIEWER_ROLE} instead (targetRole: "{REVIEWER_ROLE}").',
            suggestedTarget=REVIEWER_ROLE,
        )


async def chain_reviewed(tx: AsyncSession, origin_id: uuid.UUID) -> bool:
    """The team's reviewer has completed a task in the chain that starts at `origin_id` (what
    lets a new_feature chain go back to the user; agent text reads it as ContextWindow.reviewed)."""
    row = (
        await tx.exec(
            select(Task.id).where(
                Task.origin_message_id == origin_id,
                Task.assigned_to == REVIEWER_ROLE,
                Task.status == TaskStatus.COMPLETED,
            )
        )
    ).first()
    return row is not None


async def classify_task(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, role: str, classification: Classification
) -> Message:
    """Classify the user request behind the task the role holds. A follow-up links to the
    previous chain's origin and inherits its classification (and so its restrictions)."""
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    who = access.acting_role(room, caller, role)
    task = await writers.active_task(tx, room)
    if task is None or task.status != TaskStatus.IN_PROGRESS or task.assigned_to != who:
        raise NotTaskHolder(
            f"{who} holds no task to classify. Claim the task first, then classify it.",
        )
    origin = await tx.get(Message, task.origin_message_id) if task.origin_message_id else None
    if origin is None or task.source_message_id != origin.id or origin.sender_role != USER_ROLE:
        raise BadInput(
            "Only the task made from a user's request is classified, by the role that claimed "
            "it. This task came from a handoff: its chain is already classified.",
            field="classification",
        )
    if origin.classification == classification:
        return origin
    if origin.classification is not None:
        raise Conflict(
            f"This request is already classified as {origin.classification}; a classification "
            "is set once per chain.",
        )
    values: dict[str, Any] = {"classification": classification.value}
    values["effective_classification"] = classification.value
    if classification == Classification.FOLLOW_UP:
        previous = await _previous_origin(tx, room, origin)
        if previous is None:
            raise BadInput(
                "There is no earlier request to follow up on. Classify it as question or "
                "new_feature.",
                field="classification",
            )
        values["follows_message_id"] = previous.id
        values["effective_classification"] = previous.effective_classification
    # Classifying is a call as the holder, so it renews the holder's lease too.
    return await writers.classify_origin(
        tx, room, origin, values, task, lease=tasks.renewed_lease()
    )


async def _previous_origin(tx: AsyncSession, room: Chatroom, origin: Message) -> Message | None:
    if room.last_origin_message_id is None or room.last_origin_message_id == origin.id:
        return None
    return await tx.get(Message, room.last_origin_message_id)
