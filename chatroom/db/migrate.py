"""Apply the Alembic migrations. Safe to call from several processes at once: an advisory lock
serialises them, and the later ones find the database at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from chatroom.db.session import to_asyncpg_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", to_asyncpg_url(database_url).replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Synchronous (Alembic runs its own event loop): call via asyncio.to_thread from async code."""
    command.upgrade(alembic_config(database_url), "head")
