"""The migrations build exactly the tables, columns and indexes the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import clinscribe.models  # noqa: F401  (registers every table)
from clinscribe.db.base import Base
from clinscribe.db.engine import create_sync_engine
from clinscribe.db.migrate import upgrade


def test_migrated_schema_matches_the_models(app_database_url: str) -> None:
    url = app_database_url
    upgrade(url)
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
