"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 09:04:57.131520
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "chatrooms",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("team_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("team_roles", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("entry_point", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("next_queue_position", sa.Integer(), nullable=False),
        sa.Column("last_message_seq", sa.Integer(), nullable=False),
        sa.Column("last_event_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_origin_message_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'completed')", name=op.f("ck_chatrooms_status")),
        sa.CheckConstraint(
            "cardinality(team_roles) BETWEEN 1 AND 12", name=op.f("ck_chatrooms_team_size")
        ),
        sa.CheckConstraint(
            "entry_point = ANY(team_roles)", name=op.f("ck_chatrooms_entry_point_in_team")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_chatrooms_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatrooms")),
    )
    op.create_index(op.f("ix_chatrooms_owner_id"), "chatrooms", ["owner_id"], unique=False)
    op.create_table(
        "idempotency_records",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("operation", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_records_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "operation", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chatroom_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sender_role", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("target_role", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("classification", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("follows_message_id", sa.Uuid(), nullable=True),
        sa.Column(
            "effective_classification", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
        ),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("claimed_by_role", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "classification IN ('question', 'new_feature', 'follow_up')",
            name=op.f("ck_messages_classification"),
        ),
        sa.CheckConstraint(
            "effective_classification IN ('question', 'new_feature', 'follow_up')",
            name=op.f("ck_messages_effective_classification"),
        ),
        sa.CheckConstraint(
            "type IN ('message', 'handoff', 'interrupt', 'join')", name=op.f("ck_messages_type")
        ),
        sa.ForeignKeyConstraint(
            ["chatroom_id"],
            ["chatrooms.id"],
            name=op.f("fk_messages_chatroom_id_chatrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["follows_message_id"],
            ["messages.id"],
            name=op.f("fk_messages_follows_message_id_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("chatroom_id", "seq", name=op.f("uq_messages_chatroom_id_seq")),
    )
    op.create_table(
        "participants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chatroom_id", sa.Uuid(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('idle', 'waiting', 'active')", name=op.f("ck_participants_status")
        ),
        sa.ForeignKeyConstraint(
            ["chatroom_id"],
            ["chatrooms.id"],
            name=op.f("fk_participants_chatroom_id_chatrooms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
        sa.UniqueConstraint("chatroom_id", "role", name=op.f("uq_participants_chatroom_id_role")),
    )
    op.create_table(
        "room_events",
        sa.Column("chatroom_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('message_created', 'message_updated', 'task_created', 'task_updated', 'participant_updated', 'room_updated')",
            name=op.f("ck_room_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["chatroom_id"],
            ["chatrooms.id"],
            name=op.f("fk_room_events_chatroom_id_chatrooms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chatroom_id", "seq", name=op.f("pk_room_events")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("device_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("scope_chatroom_id", sa.Uuid(), nullable=True),
        sa.Column("scope_role", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_chatroom_id"],
            ["chatrooms.id"],
            name=op.f("fk_sessions_scope_chatroom_id_chatrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False)
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chatroom_id", sa.Uuid(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("assigned_to", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("source_message_id", sa.Uuid(), nullable=True),
        sa.Column("origin_message_id", sa.Uuid(), nullable=True),
        sa.Column("queue_position", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'queued', 'backlog', 'completed', 'cancelled')",
            name=op.f("ck_tasks_status"),
        ),
        sa.CheckConstraint("attempt >= 0", name=op.f("ck_tasks_attempt_non_negative")),
        sa.ForeignKeyConstraint(
            ["chatroom_id"],
            ["chatrooms.id"],
            name=op.f("fk_tasks_chatroom_id_chatrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["origin_message_id"], ["messages.id"], name=op.f("fk_tasks_origin_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["source_message_id"], ["messages.id"], name=op.f("fk_tasks_source_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index(
        "ix_tasks_chatroom_id_status_queue_position",
        "tasks",
        ["chatroom_id", "status", "queue_position"],
        unique=False,
    )
    op.create_index(
        "ix_tasks_lease_expires_at",
        "tasks",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'in_progress'"),
    )
    op.create_index(
        "ix_tasks_origin_message_id_assigned_to",
        "tasks",
        ["origin_message_id", "assigned_to"],
        unique=False,
    )
    op.create_index(
        "uq_tasks_one_active_per_room",
        "tasks",
        ["chatroom_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('pending', 'in_progress')"),
    )
    # messages.task_id and tasks.source_message_id point at each other: add this one last.
    op.create_foreign_key("fk_messages_task_id_tasks", "messages", "tasks", ["task_id"], ["id"])


def downgrade() -> None:
    op.drop_constraint("fk_messages_task_id_tasks", "messages", type_="foreignkey")
    op.drop_index(
        "uq_tasks_one_active_per_room",
        table_name="tasks",
        postgresql_where=sa.text("status IN ('pending', 'in_progress')"),
    )
    op.drop_index("ix_tasks_origin_message_id_assigned_to", table_name="tasks")
    op.drop_index(
        "ix_tasks_lease_expires_at",
        table_name="tasks",
        postgresql_where=sa.text("status = 'in_progress'"),
    )
    op.drop_index("ix_tasks_chatroom_id_status_queue_position", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("room_events")
    op.drop_table("participants")
    op.drop_table("messages")
    op.drop_table("idempotency_records")
    op.drop_index(op.f("ix_chatrooms_owner_id"), table_name="chatrooms")
    op.drop_table("chatrooms")
    op.drop_table("users")
