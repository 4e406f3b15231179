"""Database access: engine and sessions (engine.py), ORM base (base.py), Alembic migrations."""
