"""GraphQL output types, converted from db rows. Related objects load through per-request
batch loaders, so a list of tasks costs one query for all their messages."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

import strawberry
from sqlmodel import SQLModel

from chatroom.db import models
from chatroom.resolvers import access, delivery, handoffs
from chatroom.resolvers.teams import TeamTemplate
from chatroom.schema.agents import AgentSlot
from chatroom.schema.context import AppInfo
from chatroom.schema.session import in_read

E = TypeVar("E", bound=StrEnum)
M = TypeVar("M", bound=SQLModel)

# The db enums are the GraphQL enums (their member names are the UPPER_CASE values).
for _enum in (
    models.TaskStatus,
    models.MessageType,
    models.Classification,
    models.ParticipantStatus,
    models.RoomStatus,
    models.EventKind,
    models.LoginStatus,
    delivery.DeliveryKind,
):
    strawberry.enum(_enum)
TaskStatus = models.TaskStatus
MessageType = models.MessageType
Classification = models.Classification
ParticipantStatus = models.ParticipantStatus
RoomStatus = models.RoomStatus
EventKind = models.EventKind
DeliveryKind = delivery.DeliveryKind
LoginStatus = models.LoginStatus


def _opt(value: str | None, enum: type[E]) -> E | None:
    return enum(value) if value is not None else None


@strawberry.type
class User:
    id: strawberry.ID
    display_name: str
    created_at: datetime

    @classmethod
    def of(cls, row: models.User) -> User:
        return cls(
            id=strawberry.ID(str(row.id)), display_name=row.display_name, created_at=row.created_at
        )


@strawberry.type
class GuestSession:
    token: str = strawberry.field(description="Shown once: store it; the server keeps only a hash.")
    user: User


@strawberry.type
class Team:
    id: str
    name: str
    roles: list[str]
    entry_point: str
    description: str

    @classmethod
    def of(cls, t: TeamTemplate) -> Team:
        return cls(
            id=t.id,
            name=t.name,
            roles=list(t.roles),
            entry_point=t.entry_point,
            description=t.description,
        )


@strawberry.type
class Participant:
    role: str
    status: ParticipantStatus
    last_seen_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, row: models.Participant) -> Participant:
        return cls(
            role=row.role,
            status=models.ParticipantStatus(row.status),
            last_seen_at=row.last_seen_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class Message:
    id: strawberry.ID
    chatroom_id: strawberry.ID
    seq: int
    sender_role: str
    target_role: str | None
    content: str
    type: MessageType
    classification: Classification | None = strawberry.field(
        description="Set on a user request by the role that claimed it."
    )
    effective_classification: Classification | None = strawberry.field(
        description="The chain's rule: a follow-up inherits the classification it follows."
    )
    claimed_by_role: str | None
    created_at: datetime
    task_id: strawberry.Private[uuid.UUID | None]
    follows_message_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The task this message created, as it is now.")
    async def task(self, info: AppInfo) -> Task | None:
        return await load_task(info, self.task_id)

    @strawberry.field(description="For a follow-up: the request it continues.")
    async def follows(self, info: AppInfo) -> Message | None:
        return await load_message(info, self.follows_message_id)

    @classmethod
    def of(cls, row: models.Message) -> Message:
        return cls(
            id=strawberry.ID(str(row.id)),
            chatroom_id=strawberry.ID(str(row.chatroom_id)),
            seq=row.seq,
            sender_role=row.sender_role,
            target_role=row.target_role,
            content=row.content,
            type=models.MessageType(row.type),
            classification=_opt(row.classification, models.Classification),
            effective_classification=_opt(row.effective_classification, models.Classification),
            claimed_by_role=row.claimed_by_role,
            created_at=row.created_at,
            task_id=row.task_id,
            follows_message_id=row.follows_message_id,
        )


@strawberry.type
class Task:
    id: strawberry.ID
    chatroom_id: strawberry.ID
    status: TaskStatus
    content: str
    created_by: str
    assigned_to: str | None
    queue_position: int | None
    attempt: int = strawberry.field(description="How many times the task was claimed.")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    lease_expires_at: datetime | None
    origin_message_id: strawberry.Private[uuid.UUID | None]
    source_message_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The user request that started this chain of work.")
    async def origin_message(self, info: AppInfo) -> Message | None:
        return await load_message(info, self.origin_message_id)

    @strawberry.field(description="The message that created this task (a request or a handoff).")
    async def source_message(self, info: AppInfo) -> Message | None:
        return await load_message(info, self.source_message_id)

    @classmethod
    def of(cls, row: models.Task) -> Task:
        return cls(
            id=strawberry.ID(str(row.id)),
            chatroom_id=strawberry.ID(str(row.chatroom_id)),
            status=models.TaskStatus(row.status),
            content=row.content,
            created_by=row.created_by,
            assigned_to=row.assigned_to,
            queue_position=row.queue_position,
            attempt=row.attempt,
            created_at=row.created_at,
            updated_at=row.updated_at,
            started_at=row.started_at,
            completed_at=row.completed_at,
            lease_expires_at=row.lease_expires_at,
            origin_message_id=row.origin_message_id,
            source_message_id=row.source_message_id,
        )


@strawberry.enum(description="What a person is in a room.")
class RoomRole(StrEnum):
    OWNER = "owner"
    MEMBER = "member"
    VIEWER = "viewer"


@strawberry.type
class Chatroom:
    id: strawberry.ID
    name: str
    status: RoomStatus
    team_id: str
    team_name: str
    team_roles: list[str]
    entry_point: str
    last_event_seq: int = strawberry.field(description="Resume roomEvents from here.")
    created_at: datetime
    updated_at: datetime
    last_origin_message_id: strawberry.Private[uuid.UUID | None]
    owner_id: strawberry.Private[uuid.UUID]

    @strawberry.field(
        description="What you are in this room: its OWNER, a MEMBER (steers the work) or a "
        "VIEWER (reads only). Renaming, completing and managing people are the owner's."
    )
    async def my_role(self, info: AppInfo) -> RoomRole:
        room_id = uuid.UUID(self.id)
        role = await in_read(info, lambda tx, c: access.role_in(tx, c, room_id, self.owner_id))
        return RoomRole(role)

    @strawberry.field(
        description="The newest classified user request: the one a follow_up would follow."
    )
    async def last_request(self, info: AppInfo) -> Message | None:
        return await load_message(info, self.last_origin_message_id)

    @strawberry.field(description="One per team role, in role-priority order.")
    async def participants(self, info: AppInfo) -> list[Participant]:
        assert info.context.loaders is not None
        rows = await info.context.loaders.participants.load(uuid.UUID(self.id))
        return [Participant.of(p) for p in rows or []]

    @strawberry.field(description="The room's agent slots (chatroom agents), in role order.")
    async def agents(self, info: AppInfo) -> list[AgentSlot]:
        assert info.context.loaders is not None
        views = await info.context.loaders.agents.load(uuid.UUID(self.id))
        return [AgentSlot.of(v) for v in views or []]

    @classmethod
    def of(cls, row: models.Chatroom) -> Chatroom:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            status=models.RoomStatus(row.status),
            team_id=row.team_id,
            team_name=row.team_name,
            team_roles=list(row.team_roles),
            entry_point=row.entry_point,
            last_event_seq=row.last_event_seq,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_origin_message_id=row.last_origin_message_id,
            owner_id=row.owner_id,
        )


async def load_message(info: AppInfo, message_id: uuid.UUID | None) -> Message | None:
    if message_id is None:
        return None
    assert info.context.loaders is not None
    row = await info.context.loaders.messages.load(message_id)
    return Message.of(row) if row else None


async def load_task(info: AppInfo, task_id: uuid.UUID | None) -> Task | None:
    if task_id is None:
        return None
    assert info.context.loaders is not None
    row = await info.context.loaders.tasks.load(task_id)
    return Task.of(row) if row else None


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class MessageEdge:
    cursor: str
    node: Message


@strawberry.type
class MessageConnection:
    edges: list[MessageEdge]
    nodes: list[Message]
    page_info: PageInfo


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


@strawberry.type
class TaskCounts:
    pending: int
    in_progress: int
    queued: int
    backlog: int
    completed: int
    cancelled: int


@strawberry.type
class ContextWindow:
    origin_message: Message | None
    messages: list[Message]
    task: Task | None
    classification: Classification | None
    truncated: bool = strawberry.field(
        description="True when older messages of the chain were left out (newest kept)."
    )

    @strawberry.field(
        description="The team's reviewer has completed a task in this chain: a new_feature "
        "chain may now go back to the user."
    )
    async def reviewed(self, info: AppInfo) -> bool:
        if self.origin_message is None:
            return False
        origin = uuid.UUID(str(self.origin_message.id))
        return await in_read(info, lambda tx, _: handoffs.chain_reviewed(tx, origin))


@strawberry.type
class RolePrompt:
    role: str
    prompt: str
    allowed_targets: list[str]
    default_target: str


@strawberry.type
class SendMessageResult:
    message: Message
    task: Task | None


@strawberry.type
class SendHandoffResult:
    message: Message
    completed_tasks: list[Task]
    new_task: Task | None
    promoted_task: Task | None
    sender: Participant


@strawberry.type
class ClaimTaskResult:
    success: bool = strawberry.field(description="False when another claimer got there first.")
    task: Task
    message: Message | None
    participant: Participant | None


@strawberry.type
class TaskDelivery:
    kind: DeliveryKind
    task: Task | None
    message: Message | None = strawberry.field(
        description="The task's source message (TASK), or the interrupt message (INTERRUPT)."
    )
    resumed: bool = strawberry.field(
        description="True when the role already held this task (its agent restarted)."
    )

    @classmethod
    def of(cls, d: delivery.Delivery) -> TaskDelivery:
        return cls(
            kind=d.kind,
            task=Task.of(d.task) if d.task else None,
            message=Message.of(d.message) if d.message else None,
            resumed=d.resumed,
        )


@strawberry.type
class RoomEvent:
    """One change, as it happened: the payload is the object as that change left it."""

    seq: int
    kind: EventKind
    chatroom_id: strawberry.ID
    created_at: datetime
    message: Message | None
    task: Task | None
    participant: Participant | None
    room: Chatroom | None
    agent: AgentSlot | None = strawberry.field(description="The slot, for AGENT_UPDATED.")

    @classmethod
    def of(cls, row: models.RoomEvent) -> RoomEvent:
        p = row.payload

        def part(key: str, model: type[M]) -> M | None:
            return model.model_validate(p[key]) if p.get(key) else None

        message, task = part("message", models.Message), part("task", models.Task)
        participant, room = part("participant", models.Participant), part("room", models.Chatroom)
        return cls(
            seq=row.seq,
            kind=models.EventKind(row.kind),
            chatroom_id=strawberry.ID(str(row.chatroom_id)),
            created_at=row.created_at,
            message=Message.of(message) if message else None,
            task=Task.of(task) if task else None,
            participant=Participant.of(participant) if participant else None,
            room=Chatroom.of(room) if room else None,
            agent=AgentSlot.of_payload(p["agent"]) if p.get("agent") else None,
        )


@strawberry.type
class CliLoginRequest:
    request_id: strawberry.ID = strawberry.field(
        description="Keep it secret: whoever holds it collects the token (cliLoginStatus)."
    )
    user_code: str = strawberry.field(description="Show it to the person who approves.")
    verification_path: str = strawberry.field(description="Open this path on the server.")
    status: LoginStatus
    device_name: str | None
    expires_at: datetime

    @classmethod
    def of(cls, row: models.CliLoginRequest) -> CliLoginRequest:
        return cls(
            request_id=strawberry.ID(str(row.id)),
            user_code=row.user_code,
            verification_path=f"/cli-auth?code={row.user_code}",
            status=models.LoginStatus(row.status),
            device_name=row.device_name,
            expires_at=row.expires_at,
        )


@strawberry.type
class CliLoginApproval:
    """What the approval page may see of a request (never its id, which is the CLI's secret)."""

    user_code: str
    status: LoginStatus
    device_name: str | None
    expires_at: datetime

    @classmethod
    def of(cls, row: models.CliLoginRequest) -> CliLoginApproval:
        return cls(
            user_code=row.user_code,
            status=models.LoginStatus(row.status),
            device_name=row.device_name,
            expires_at=row.expires_at,
        )


@strawberry.type
class CliLoginStatus:
    status: LoginStatus
    token: str | None = strawberry.field(
        description="Present once: on the first status after approval (then COLLECTED)."
    )
    user: User | None
    expires_at: datetime


@strawberry.type
class Session:
    """One of my sessions. The token itself is never shown again."""

    id: strawberry.ID
    device_name: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    current: bool
    scope_chatroom_id: strawberry.ID | None
    scope_role: str | None

    @classmethod
    def of(cls, row: models.AuthSession, *, current_id: uuid.UUID | None) -> Session:
        return cls(
            id=strawberry.ID(str(row.id)),
            device_name=row.device_name,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            current=row.id == current_id,
            scope_chatroom_id=strawberry.ID(str(row.scope_chatroom_id))
            if row.scope_chatroom_id
            else None,
            scope_role=row.scope_role,
        )


@strawberry.type
class AgentToken:
    token: str = strawberry.field(
        description="Shown once. Give it to the agent (CHATROOM_TOKEN); it acts only as its "
        "role in its room."
    )
    session: Session
