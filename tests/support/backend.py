"""Which database the test suite runs on: ``CLINSCRIBE_TEST_DATABASE=sqlite`` (default) or
``postgres``.

In postgres mode tests/conftest.py starts one private cluster for the session and registers
it here; every ``ServerProcess`` whose settings name no database URL then gets a fresh app
database and DBOS system database on it (one pair per data directory, so processes sharing a
data directory share databases, as they share the SQLite files by default).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from tests.support.postgres import PostgresCluster

DATABASE_KEYS = ("CLINSCRIBE_DATABASE_URL", "CLINSCRIBE_SYSTEM_DATABASE_URL")
MODE = os.environ.get("CLINSCRIBE_TEST_DATABASE", "sqlite").strip().lower() or "sqlite"
if MODE not in ("sqlite", "postgres"):
    raise RuntimeError(f"CLINSCRIBE_TEST_DATABASE must be sqlite or postgres, not {MODE!r}")

_cluster: PostgresCluster | None = None
_by_data_dir: dict[Path, dict[str, str]] = {}
# Set while a test marked ``no_database`` runs: any database use then fails the test.
forbidden: str | None = None


def on_postgres() -> bool:
    return MODE == "postgres"


def use_cluster(cluster: PostgresCluster | None) -> None:
    global _cluster
    _cluster = cluster
    _by_data_dir.clear()


def cluster() -> PostgresCluster:
    if _cluster is None:
        raise RuntimeError("postgres mode, but no cluster is registered (tests/conftest.py)")
    return _cluster


def check_allowed(what: str) -> None:
    if forbidden is not None:
        raise AssertionError(f"{forbidden} is marked no_database but used a database ({what})")


def server_databases(data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """The database settings a server in ``data_dir`` gets in postgres mode (none on SQLite,
    or when ``env`` already names a database)."""
    if not on_postgres() or any(key in env for key in DATABASE_KEYS):
        return {}
    key = data_dir.resolve()
    if key not in _by_data_dir:
        found = cluster()
        app, system = found.create_database("app"), found.create_database("sys")
        _by_data_dir[key] = {
            "CLINSCRIBE_DATABASE_URL": found.url(app),
            "CLINSCRIBE_SYSTEM_DATABASE_URL": found.url(system, driver=False),
        }
    return dict(_by_data_dir[key])


def database_env(data_dir: Path) -> dict[str, str]:
    """Database settings for a ``clinscribe`` command on ``data_dir``: the same databases a
    ``ServerProcess`` on that directory uses (nothing in SQLite mode: the files in it)."""
    return server_databases(data_dir, {})


def data_dir_database_url(data_dir: Path) -> str:
    """The app database URL the service on ``data_dir`` uses (no database settings given)."""
    default = f"sqlite:///{data_dir / 'clinscribe.sqlite3'}"
    return database_env(data_dir).get("CLINSCRIBE_DATABASE_URL", default)


def read_only(url: str) -> sqlite3.Connection | ReadOnlyPostgres:
    """A read-only connection to ``url`` taking ``?`` placeholders (SQLite or Postgres)."""
    if url.startswith("postgresql"):
        return ReadOnlyPostgres(url)
    path = url.removeprefix("sqlite:///")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def app_database_url(directory: Path, filename: str = "app.sqlite3") -> str:
    """A fresh, empty app database for in-process tests: a SQLite file in ``directory``, or
    a new database on the session's cluster in postgres mode."""
    if on_postgres():
        return cluster().url(cluster().create_database("app"))
    return f"sqlite:///{directory / filename}"


def libpq_url(url: str) -> str:
    """A SQLAlchemy Postgres URL as psycopg/libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class ReadOnlyPostgres:
    """What tests use of a read-only ``sqlite3`` connection, on Postgres: ``execute`` with
    ``?`` placeholders returning a cursor (tuples), and ``with`` (here it also closes)."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(
            libpq_url(url), autocommit=True, options="-c default_transaction_read_only=on"
        )

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        if params:
            return self._conn.execute(sql.replace("%", "%%").replace("?", "%s"), params)
        return self._conn.execute(sql)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReadOnlyPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
