"""announce every change to a session row

Each server process caches the sessions it authenticated (chatroom/db/session_cache.py). A
trigger announces every UPDATE or DELETE of a session row on the notify channel, in the
changing transaction, so every process forgets its copy whoever changed the row: a revocation,
a renewal, an expiry or deletion made by any process, a user's deletion (the cascade), or an
operator's SQL. The payload is "session:<session id>", the format chatroom/db/notify.py owns
(and parses); the channel is its NOTIFY_CHANNEL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 22:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION chatroom_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('chatroom_events', 'session:' || OLD.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions "
        "FOR EACH ROW EXECUTE FUNCTION chatroom_session_changed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER sessions_changed ON sessions")
    op.execute("DROP FUNCTION chatroom_session_changed()")
