"""SQLModel tables. Invariants live here as constraints so PostgreSQL enforces them under any
concurrency: unique (room, role) participants, one pending/in-progress task per room (partial
unique index), per-room message and event sequences, and CHECKs on every enum column."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Column, Field, SQLModel

# Stable constraint names, so migrations and error translation can refer to them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

TZ = DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class RoomStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"


class ParticipantStatus(StrEnum):
    IDLE = "idle"
    WAITING = "waiting"
    ACTIVE = "active"


class MessageType(StrEnum):
    MESSAGE = "message"
    HANDOFF = "handoff"
    INTERRUPT = "interrupt"
    JOIN = "join"


class Classification(StrEnum):
    QUESTION = "question"
    NEW_FEATURE = "new_feature"
    FOLLOW_UP = "follow_up"


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    QUEUED = "queued"
    BACKLOG = "backlog"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


ACTIVE_TASK_STATUSES = (TaskStatus.PENDING, TaskStatus.IN_PROGRESS)


class EventKind(StrEnum):
    MESSAGE_CREATED = "message_created"
    MESSAGE_UPDATED = "message_updated"
    TASK_CREATED = "task_created"
    TASK_UPDATED = "task_updated"
    PARTICIPANT_UPDATED = "participant_updated"
    ROOM_UPDATED = "room_updated"
    AGENT_UPDATED = "agent_updated"


def _in_check(column: str, enum: type[StrEnum], name: str) -> CheckConstraint:
    values = ", ".join(f"'{v.value}'" for v in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    display_name: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class AuthSession(SQLModel, table=True):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once."""

    __tablename__ = "sessions"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    device_name: str | None = Field(default=None, max_length=100)
    scope_chatroom_id: uuid.UUID | None = Field(
        default=None, foreign_key="chatrooms.id", ondelete="CASCADE"
    )
    scope_role: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    last_used_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)


class LoginStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    COLLECTED = "collected"


class CliLoginRequest(SQLModel, table=True):
    """Device login: the CLI waits on its request id (a random secret only it knows) while a
    signed-in browser approves the short user code. The token is minted when the CLI collects
    it, exactly once, so no plaintext token is ever stored."""

    __tablename__ = "cli_login_requests"
    __table_args__ = (
        _in_check("status", LoginStatus, "status"),
        Index(
            "uq_cli_login_requests_pending_user_code",
            "user_code",
            unique=True,
            postgresql_where=text("status IN ('pending', 'approved')"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_code: str = Field(max_length=9)
    device_name: str | None = Field(default=None, max_length=100)
    status: str = Field(default=LoginStatus.PENDING.value, max_length=16)
    approved_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    session_id: uuid.UUID | None = Field(
        default=None, foreign_key="sessions.id", ondelete="SET NULL"
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)


class Chatroom(SQLModel, table=True):
    __tablename__ = "chatrooms"
    __table_args__ = (
        _in_check("status", RoomStatus, "status"),
        CheckConstraint("entry_point = ANY(team_roles)", name="entry_point_in_team"),
        CheckConstraint("cardinality(team_roles) BETWEEN 1 AND 12", name="team_size"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    status: str = Field(default=RoomStatus.ACTIVE.value, max_length=16)
    team_id: str = Field(max_length=32)
    team_name: str = Field(max_length=100)
    team_roles: list[str] = Field(sa_column=Column(ARRAY(String(32)), nullable=False))
    entry_point: str = Field(max_length=32)
    # Counters live on the room row: every writer locks it first, so they never race.
    next_queue_position: int = Field(default=0)
    last_message_seq: int = Field(default=0)
    last_event_seq: int = Field(default=0, sa_type=BigInteger)
    # The newest classified chain origin, which a follow-up links to (no scan needed).
    last_origin_message_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Participant(SQLModel, table=True):
    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("chatroom_id", "role"),
        _in_check("status", ParticipantStatus, "status"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    chatroom_id: uuid.UUID = Field(foreign_key="chatrooms.id", ondelete="CASCADE")
    role: str = Field(max_length=32)
    status: str = Field(default=ParticipantStatus.IDLE.value, max_length=16)
    last_seen_at: datetime | None = Field(default=None, sa_type=TZ)
    # The role's one live waiter (taskAvailable subscription), on any server process: a newer
    # waiter overwrites it, and the older one, woken by the change, sees it was superseded.
    waiter_id: uuid.UUID | None = Field(default=None)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("chatroom_id", "seq"),
        _in_check("type", MessageType, "type"),
        _in_check("classification", Classification, "classification"),
        _in_check("effective_classification", Classification, "effective_classification"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    chatroom_id: uuid.UUID = Field(foreign_key="chatrooms.id", ondelete="CASCADE")
    seq: int
    sender_role: str = Field(max_length=32)
    target_role: str | None = Field(default=None, max_length=32)
    content: str = Field(sa_type=Text)
    type: str = Field(default=MessageType.MESSAGE.value, max_length=16)
    classification: str | None = Field(default=None, max_length=16)
    # For a follow-up: the origin of the chain it continues, and the classification it inherits.
    follows_message_id: uuid.UUID | None = Field(default=None, foreign_key="messages.id")
    effective_classification: str | None = Field(default=None, max_length=16)
    task_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("tasks.id", use_alter=True, name="fk_messages_task_id_tasks")),
    )
    claimed_by_role: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        _in_check("status", TaskStatus, "status"),
        CheckConstraint("attempt >= 0", name="attempt_non_negative"),
        # The baton rule: at most one pending or in-progress task per room, whatever the code does.
        Index(
            "uq_tasks_one_active_per_room",
            "chatroom_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'in_progress')"),
        ),
        Index(
            "ix_tasks_chatroom_id_status_queue_position", "chatroom_id", "status", "queue_position"
        ),
        Index("ix_tasks_origin_message_id_assigned_to", "origin_message_id", "assigned_to"),
        Index(
            "ix_tasks_lease_expires_at",
            "lease_expires_at",
            postgresql_where=text("status = 'in_progress'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    chatroom_id: uuid.UUID = Field(foreign_key="chatrooms.id", ondelete="CASCADE")
    status: str = Field(max_length=16)
    content: str = Field(sa_type=Text)
    created_by: str = Field(max_length=32)
    assigned_to: str | None = Field(default=None, max_length=32)
    source_message_id: uuid.UUID | None = Field(default=None, foreign_key="messages.id")
    origin_message_id: uuid.UUID | None = Field(default=None, foreign_key="messages.id")
    queue_position: int | None = Field(default=None)
    attempt: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    started_at: datetime | None = Field(default=None, sa_type=TZ)
    completed_at: datetime | None = Field(default=None, sa_type=TZ)
    lease_expires_at: datetime | None = Field(default=None, sa_type=TZ)


class RoomEvent(SQLModel, table=True):
    """The durable log subscriptions replay: one row per change, in the changing transaction."""

    __tablename__ = "room_events"
    __table_args__ = (_in_check("kind", EventKind, "kind"),)

    chatroom_id: uuid.UUID = Field(foreign_key="chatrooms.id", primary_key=True, ondelete="CASCADE")
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class IdempotencyRecord(SQLModel, table=True):
    """The first result of a keyed mutation, replayed to retries with the same key."""

    __tablename__ = "idempotency_records"

    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    operation: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class MemberRole(StrEnum):
    """What a room's owner grants another account: members act in the room as the owner
    does (except managing members); viewers only read."""

    MEMBER = "member"
    VIEWER = "viewer"


class Account(SQLModel, table=True):
    """A user who can sign in with a username and password. Guests are users without an
    account row; upgrading a guest adds the row and keeps the user (and its rooms)."""

    __tablename__ = "accounts"
    __table_args__ = (
        # Usernames are unique case-insensitively: "Ada" and "ada" are one account.
        Index("uq_accounts_username_lower", text("lower(username)"), unique=True),
    )

    user_id: uuid.UUID = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    username: str = Field(max_length=32)
    # Argon2id (pwdlib), the encoded form carrying its own salt and parameters.
    password_hash: str = Field(sa_type=Text)
    is_admin: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class SignupInvite(SQLModel, table=True):
    """One account's worth of signup under CHATROOM_SIGNUP=invite. Only the code's SHA-256
    is stored."""

    __tablename__ = "signup_invites"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    created_by: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    used_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    used_at: datetime | None = Field(default=None, sa_type=TZ)


class RoomMember(SQLModel, table=True):
    """Another account's place in a room (the owner is not listed here: chatrooms.owner_id)."""

    __tablename__ = "room_members"
    __table_args__ = (
        UniqueConstraint("chatroom_id", "user_id"),
        _in_check("role", MemberRole, "role"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    chatroom_id: uuid.UUID = Field(foreign_key="chatrooms.id", ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class RoomInvite(SQLModel, table=True):
    """A link that makes whoever accepts it a member or viewer of a room, until it expires
    or has been used max_uses times. Only the code's SHA-256 is stored."""

    __tablename__ = "room_invites"
    __table_args__ = (
        _in_check("role", MemberRole, "role"),
        CheckConstraint("max_uses >= 1", name="max_uses_positive"),
        CheckConstraint("uses BETWEEN 0 AND max_uses", name="uses_within_max"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    chatroom_id: uuid.UUID = Field(foreign_key="chatrooms.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    created_by: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    max_uses: int = Field(default=1)
    uses: int = Field(default=0)


class SignInThrottle(SQLModel, table=True):
    """Failed sign-ins counted per key ("account:<lower username>" or "address:<ip>"), in the
    database so every server process shares the limit."""

    __tablename__ = "sign_in_throttles"

    key: str = Field(primary_key=True, max_length=200)
    failures: int = Field(default=0)
    window_started_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Harness(StrEnum):
    """The agent CLIs a slot can run (chatroom/runner/harnesses)."""

    CLAUDE = "claude"
    CODEX = "codex"
    OPENCODE = "opencode"
    COMMAND = "command"


class AgentDesiredState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class AgentState(StrEnum):
    """What a slot's daemon last reported."""

    STARTING = "starting"
    WAITING = "waiting"
    WORKING = "working"
    BACKOFF = "backoff"
    NEEDS_ATTENTION = "needs_attention"
    CIRCUIT_OPEN = "circuit_open"
    SUPERSEDED = "superseded"
    STOPPED = "stopped"


MAX_ACTIVITY_CHARS = 200
MAX_LAST_ERROR_CHARS = 2000


class Machine(SQLModel, table=True):
    """A computer where agents run (SPEC §10), its owner's alone. `daemon_id` is the daemon
    process that registered last (a new random id each start)."""

    __tablename__ = "machines"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    # [{"name": "claude", "version": "2.0.1"}, ...]: what the daemon found on its PATH.
    harnesses: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    daemon_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class AgentSlot(SQLModel, table=True):
    """(room, role) -> machine and how to run the role's agent there, what is desired and what
    the serving daemon last reported. One per (room, role), whatever the code does."""

    __tablename__ = "agent_slots"
    __table_args__ = (
        UniqueConstraint("chatroom_id", "role"),
        _in_check("harness", Harness, "harness"),
        _in_check("desired_state", AgentDesiredState, "desired_state"),
        _in_check("state", AgentState, "state"),
        CheckConstraint("generation >= 1", name="generation_positive"),
        CheckConstraint("task_timeout_seconds > 0", name="task_timeout_positive"),
        CheckConstraint(
            f"char_length(last_error) <= {MAX_LAST_ERROR_CHARS}", name="last_error_length"
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    chatroom_id: uuid.UUID = Field(foreign_key="chatrooms.id", ondelete="CASCADE")
    role: str = Field(max_length=32)
    machine_id: uuid.UUID = Field(foreign_key="machines.id", index=True, ondelete="CASCADE")
    harness: str = Field(max_length=16)
    workdir: str = Field(sa_type=Text)
    model: str | None = Field(default=None, max_length=100)
    command: str | None = Field(default=None, sa_type=Text)
    fresh_session: bool = Field(default=False)
    task_timeout_seconds: int | None = Field(default=None)
    desired_state: str = Field(default=AgentDesiredState.RUNNING.value, max_length=16)
    # Bumped when the daemon must (re)start the slot: a restart, a changed config, a start
    # after a stop.
    generation: int = Field(default=1)
    state: str = Field(default=AgentState.STOPPED.value, max_length=16)
    activity: str | None = Field(default=None, max_length=MAX_ACTIVITY_CHARS)
    last_error: str | None = Field(default=None, sa_type=Text)
    task_id: uuid.UUID | None = Field(default=None)
    # The daemon that claimed the slot last (newest claim wins), and its per-slot token.
    daemon_id: uuid.UUID | None = Field(default=None)
    token_session_id: uuid.UUID | None = Field(
        default=None, foreign_key="sessions.id", ondelete="SET NULL"
    )
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    reported_at: datetime | None = Field(default=None, sa_type=TZ)
