"""Alembic, driven from code: `clinscribe db upgrade`, startup, and the readiness check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from clinscribe.db.engine import create_sync_engine, sync_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def pending_revisions(url: str) -> list[str]:
    """Revisions not yet applied; empty when the schema is current."""
    script = ScriptDirectory.from_config(alembic_config(url))
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    heads = set(script.get_heads())
    if current == heads:
        return []
    # Only what lies between the database's revision and the heads (not every other one).
    between = script.iterate_revisions(tuple(heads), tuple(current) or "base")
    return [rev.revision for rev in between if rev is not None and rev.revision not in current]
