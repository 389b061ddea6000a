"""accounts, signup invites, room members and invites, sign-in throttles

Guests stay users without an account row, so existing rooms and sessions are untouched.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString
_tz = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("username", _str(length=32), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", _tz, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_accounts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_accounts")),
    )
    op.create_index(
        "uq_accounts_username_lower", "accounts", [sa.text("lower(username)")], unique=True
    )
    op.create_table(
        "signup_invites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", _str(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", _tz, nullable=False),
        sa.Column("expires_at", _tz, nullable=False),
        sa.Column("used_by", sa.Uuid(), nullable=True),
        sa.Column("used_at", _tz, nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_signup_invites_created_by_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["used_by"],
            ["users.id"],
            name=op.f("fk_signup_invites_used_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_invites")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_signup_invites_code_hash")),
    )
    op.create_table(
        "room_members",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chatroom_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", _str(length=16), nullable=False),
        sa.Column("created_at", _tz, nullable=False),
        sa.CheckConstraint("role IN ('member', 'viewer')", name=op.f("ck_room_members_role")),
        sa.ForeignKeyConstraint(
            ["chatroom_id"],
            ["chatrooms.id"],
            name=op.f("fk_room_members_chatroom_id_chatrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_room_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room_members")),
        sa.UniqueConstraint(
            "chatroom_id", "user_id", name=op.f("uq_room_members_chatroom_id_user_id")
        ),
    )
    op.create_index(op.f("ix_room_members_user_id"), "room_members", ["user_id"], unique=False)
    op.create_table(
        "room_invites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chatroom_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", _str(length=64), nullable=False),
        sa.Column("role", _str(length=16), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", _tz, nullable=False),
        sa.Column("expires_at", _tz, nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.CheckConstraint("role IN ('member', 'viewer')", name=op.f("ck_room_invites_role")),
        sa.CheckConstraint("max_uses >= 1", name=op.f("ck_room_invites_max_uses_positive")),
        sa.CheckConstraint(
            "uses BETWEEN 0 AND max_uses", name=op.f("ck_room_invites_uses_within_max")
        ),
        sa.ForeignKeyConstraint(
            ["chatroom_id"],
            ["chatrooms.id"],
            name=op.f("fk_room_invites_chatroom_id_chatrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_room_invites_created_by_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room_invites")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_room_invites_code_hash")),
    )
    op.create_index(
        op.f("ix_room_invites_chatroom_id"), "room_invites", ["chatroom_id"], unique=False
    )
    op.create_table(
        "sign_in_throttles",
        sa.Column("key", _str(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", _tz, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttles")),
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttles")
    op.drop_index(op.f("ix_room_invites_chatroom_id"), table_name="room_invites")
    op.drop_table("room_invites")
    op.drop_index(op.f("ix_room_members_user_id"), table_name="room_members")
    op.drop_table("room_members")
    op.drop_table("signup_invites")
    op.drop_index("uq_accounts_username_lower", table_name="accounts")
    op.drop_table("accounts")
