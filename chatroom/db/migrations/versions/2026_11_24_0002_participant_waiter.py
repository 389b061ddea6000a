"""participant waiter

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:12:15.950532
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("participants", sa.Column("waiter_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("participants", "waiter_id")
