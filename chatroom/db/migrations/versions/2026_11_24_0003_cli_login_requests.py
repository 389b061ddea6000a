"""cli login requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:14:57.420996
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cli_login_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_code", sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
        sa.Column("device_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("approved_by", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'denied', 'expired', 'collected')",
            name=op.f("ck_cli_login_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"],
            ["users.id"],
            name=op.f("fk_cli_login_requests_approved_by_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_cli_login_requests_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cli_login_requests")),
    )
    op.create_index(
        "uq_cli_login_requests_pending_user_code",
        "cli_login_requests",
        ["user_code"],
        unique=True,
        postgresql_where=sa.text("status IN ('pending', 'approved')"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_cli_login_requests_pending_user_code",
        table_name="cli_login_requests",
        postgresql_where=sa.text("status IN ('pending', 'approved')"),
    )
    op.drop_table("cli_login_requests")
