"""Engines and sessions for the app database (SQLite in WAL mode by default, or Postgres).

Whoever opens a session commits it: a request dependency or a pipeline step, never a service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _with_driver(url: str, sqlite_driver: str) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername=sqlite_driver).render_as_string(hide_password=False)
    if backend == "postgresql":  # psycopg 3 serves both the sync and the async engines
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def sync_url(url: str) -> str:
    """The URL for a synchronous driver (migrations, CLI)."""
    return _with_driver(url, "sqlite+pysqlite")


def async_url(url: str) -> str:
    return _with_driver(url, "sqlite+aiosqlite")


def _tune_sqlite(dbapi_connection: Any, _record: Any, *, foreign_keys: bool = True) -> None:
    # WAL lets readers (SSE, status polls) run beside the writing worker; NORMAL sync is safe
    # with WAL; the busy timeout absorbs short write contention instead of failing requests.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cursor.close()


def _tune_sqlite_for_migrations(dbapi_connection: Any, record: Any) -> None:
    # Alembic's batch mode rebuilds a SQLite table by copying it and dropping the original;
    # with foreign keys on, that drop would cascade and delete every child row (notes,
    # utterances). Migrations run with them off and check integrity afterwards.
    _tune_sqlite(dbapi_connection, record, foreign_keys=False)


def create_app_engine(url: str, *, pooled: bool = True) -> AsyncEngine:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if _is_sqlite(url) and not pooled:
        # aiosqlite keeps a non-daemon thread per open connection: a pooled connection that
        # is never disposed keeps the process alive. Used where no dispose is guaranteed.
        kwargs = {"poolclass": NullPool}
    elif _is_sqlite(url):
        # Keep enough connections open for bursts (requests, live-event polls, steps): a
        # connection past the pool's size is closed when returned, and opening one costs a
        # thread start and four PRAGMAs on the event loop. That churn was most of the status
        # reads' p99 under load (bench/load_test.py). An idle connection is one idle thread.
        kwargs.update(pool_size=20, max_overflow=20)
    else:
        kwargs.update(pool_size=5, max_overflow=10)
    engine = create_async_engine(async_url(url), **kwargs)
    if _is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
    return engine


def create_sync_engine(url: str, *, for_migrations: bool = False) -> Engine:
    engine = create_engine(sync_url(url), pool_pre_ping=True)
    if _is_sqlite(url):
        tune = _tune_sqlite_for_migrations if for_migrations else _tune_sqlite
        event.listen(engine, "connect", tune)
    return engine


class Database:
    """The app database of one process: an async engine and its session factory."""

    def __init__(self, url: str, *, pooled: bool = True) -> None:
        self.url = url
        self.engine = create_app_engine(url, pooled=pooled)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session committed on success and rolled back on error."""
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
