"""machines and agent slots (SPEC §10), and the AGENT_UPDATED room event

A machine is a computer where agents run, owned by the user who registered it; an agent slot
is (room, role) -> machine, harness, working directory and desired state, plus what the
serving daemon last reported. One slot per (room, role), and CHECKs on every enum column.
room_events.kind takes the new kind; going down removes those events first (the old CHECK
would refuse them).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString
_tz = sa.DateTime(timezone=True)

_KINDS = (
    "'message_created', 'message_updated', 'task_created', 'task_updated', "
    "'participant_updated', 'room_updated'"
)


def _event_kinds(kinds: str) -> None:
    op.drop_constraint(op.f("ck_room_events_kind"), "room_events", type_="check")
    op.create_check_constraint(op.f("ck_room_events_kind"), "room_events", f"kind IN ({kinds})")


def upgrade() -> None:
    op.create_table(
        "machines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", _str(length=100), nullable=False),
        sa.Column("harnesses", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("daemon_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", _tz, nullable=False),
        sa.Column("last_seen_at", _tz, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_machines_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machines")),
    )
    op.create_index(op.f("ix_machines_owner_id"), "machines", ["owner_id"], unique=False)
    op.create_table(
        "agent_slots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chatroom_id", sa.Uuid(), nullable=False),
        sa.Column("role", _str(length=32), nullable=False),
        sa.Column("machine_id", sa.Uuid(), nullable=False),
        sa.Column("harness", _str(length=16), nullable=False),
        sa.Column("workdir", sa.Text(), nullable=False),
        sa.Column("model", _str(length=100), nullable=True),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("fresh_session", sa.Boolean(), nullable=False),
        sa.Column("task_timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("desired_state", _str(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("state", _str(length=16), nullable=False),
        sa.Column("activity", _str(length=200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("daemon_id", sa.Uuid(), nullable=True),
        sa.Column("token_session_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", _tz, nullable=False),
        sa.Column("reported_at", _tz, nullable=True),
        sa.CheckConstraint(
            "harness IN ('claude', 'codex', 'opencode', 'command')",
            name=op.f("ck_agent_slots_harness"),
        ),
        sa.CheckConstraint(
            "desired_state IN ('running', 'stopped')", name=op.f("ck_agent_slots_desired_state")
        ),
        sa.CheckConstraint(
            "state IN ('starting', 'waiting', 'working', 'backoff', 'needs_attention', "
            "'circuit_open', 'superseded', 'stopped')",
            name=op.f("ck_agent_slots_state"),
        ),
        sa.CheckConstraint("generation >= 1", name=op.f("ck_agent_slots_generation_positive")),
        sa.CheckConstraint(
            "task_timeout_seconds > 0", name=op.f("ck_agent_slots_task_timeout_positive")
        ),
        sa.CheckConstraint(
            "char_length(last_error) <= 2000", name=op.f("ck_agent_slots_last_error_length")
        ),
        sa.ForeignKeyConstraint(
            ["chatroom_id"],
            ["chatrooms.id"],
            name=op.f("fk_agent_slots_chatroom_id_chatrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["machine_id"],
            ["machines.id"],
            name=op.f("fk_agent_slots_machine_id_machines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["token_session_id"],
            ["sessions.id"],
            name=op.f("fk_agent_slots_token_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_slots")),
        sa.UniqueConstraint("chatroom_id", "role", name=op.f("uq_agent_slots_chatroom_id_role")),
    )
    op.create_index(op.f("ix_agent_slots_machine_id"), "agent_slots", ["machine_id"], unique=False)
    _event_kinds(_KINDS + ", 'agent_updated'")


def downgrade() -> None:
    op.execute("DELETE FROM room_events WHERE kind = 'agent_updated'")
    _event_kinds(_KINDS)
    op.drop_index(op.f("ix_agent_slots_machine_id"), table_name="agent_slots")
    op.drop_table("agent_slots")
    op.drop_index(op.f("ix_machines_owner_id"), table_name="machines")
    op.drop_table("machines")
