"""Messages: the user's requests (which become tasks), agents' notes, reading the feed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import Chatroom, Message, Task, TaskStatus
from chatroom.resolvers import access, idempotency, validation, writers
from chatroom.resolvers.auth import Caller
from chatroom.resolvers.validation import USER_ROLE

MAX_PAGE = 200
CONTEXT_WINDOW_LIMIT = 100


@dataclass
class SendMessageOutcome(idempotency.Outcome):
    message: Message
    task: Task | None


async def send_message(
    tx: AsyncSession,
    caller: Caller,
    *,
    chatroom_id: str,
    content: str,
    sender_role: str = USER_ROLE,
    target_role: str | None = None,
    idempotency_key: str | None = None,
) -> SendMessageOutcome:
    """A user message becomes a task (pending if the room is idle, else queued). An agent's
    message is informational: it is shown in the feed and creates no task."""
    room = await access.load_room(tx, caller, chatroom_id, lock=True)
    sender = access.acting_role(room, caller, sender_role, field="senderRole", allow_user=True)
    target = access.team_role(room, target_role, field="targetRole") if target_role else None
    body = validation.content(content)
    key = validation.idempotency_key(idempotency_key)
    request = {"room": str(room.id), "sender": sender, "target": target, "content": body}
    keyed = await idempotency.begin(tx, caller, "sendMessage", key, request, SendMessageOutcome)
    if keyed.replayed is not None:
        return keyed.replayed
    access.require_open(room)
    await writers.expire_lapsed_lease(tx, room)
    status = None
    if sender == USER_ROLE:
        busy = await writers.active_task(tx, room) is not None
        status = TaskStatus.QUEUED if busy else TaskStatus.PENDING
    message, task = await writers.post(
        tx,
        room,
        sender_role=sender,
        content=body,
        target_role=target or (room.entry_point if sender == USER_ROLE else None),
        task_status=status,
        # An explicit target is honoured; otherwise the entry point takes it.
        assigned_to=target,
    )
    return await keyed.record(SendMessageOutcome(message, task))


@dataclass
class MessagePage:
    messages: list[Message]
    has_next_page: bool
    has_previous_page: bool


async def list_messages(
    tx: AsyncSession,
    caller: Caller,
    *,
    chatroom_id: str,
    first: int | None = None,
    after_seq: int | None = None,
    last: int | None = None,
    before_seq: int | None = None,
) -> MessagePage:
    """Oldest first. `first/after` pages forward; `last/before` pages back from the newest.
    Every page is an index range scan on (chatroom_id, seq), whatever the room's size."""
    room = await access.load_room(tx, caller, chatroom_id, lock=False)
    query = select(Message).where(Message.chatroom_id == room.id)
    if after_seq is not None:
        query = query.where(Message.seq > after_seq)
    if before_seq is not None:
        query = query.where(Message.seq < before_seq)
    backwards = last is not None and first is None
    requested = (last if backwards else first) or 50
    size = max(1, min(requested, MAX_PAGE))
    order = col(Message.seq).desc() if backwards else col(Message.seq)
    rows = list((await tx.exec(query.order_by(order).limit(size + 1))).all())
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
        return MessagePage(rows, has_next_page=before_seq is not None, has_previous_page=more)
    return MessagePage(rows, has_next_page=more, has_previous_page=after_seq is not None)


@dataclass
class ContextWindow:
    origin: Message | None
    messages: list[Message]
    task: Task | None
    classification: str | None
    truncated: bool


async def context_window(
    tx: AsyncSession, caller: Caller, *, chatroom_id: str, role: str
) -> ContextWindow:
    """What an agent needs to pick up its task: the chain's origin message and the messages
    after it (the newest CONTEXT_WINDOW_LIMIT of them)."""
    room = await access.load_room(tx, caller, chatroom_id, lock=False)
    who = access.acting_role(room, caller, role)
    task = await _current_task_for(tx, room, who)
    origin_id = task.origin_message_id if task else room.last_origin_message_id
    origin = await tx.get(Message, origin_id) if origin_id else None
    if origin is None:
        return ContextWindow(None, [], task, None, False)
    after = list(
        (
            await tx.exec(
                select(Message)
                .where(Message.chatroom_id == room.id, Message.seq > origin.seq)
                .order_by(col(Message.seq).desc())
                .limit(CONTEXT_WINDOW_LIMIT + 1)
            )
        ).all()
    )
    truncated = len(after) > CONTEXT_WINDOW_LIMIT
    after = list(reversed(after[:CONTEXT_WINDOW_LIMIT]))
    return ContextWindow(origin, [origin, *after], task, origin.effective_classification, truncated)


async def _current_task_for(tx: AsyncSession, room: Chatroom, role: str) -> Task | None:
    """The role's active task: the room's pending/in-progress one, if it is routed to the role."""
    task = await writers.active_task(tx, room, lock=False)
    return task if task is not None and access.routable_to(task, role, room.entry_point) else None


async def messages_by_id(tx: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Message]:
    rows = await tx.exec(select(Message).where(col(Message.id).in_(ids)))
    return {m.id: m for m in rows.all()}
