"""Shared fixtures: a fake OpenAI-compatible STT server and the real service as a subprocess.

``CLINSCRIBE_TEST_DATABASE=postgres`` runs the suite on PostgreSQL (tests/support/backend.py):
tests marked ``sqlite_only`` are skipped and those marked ``no_database`` are deselected (they
never touch a database, which is checked in both modes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support import backend
from tests.support.postgres import PostgresCluster, postgres_bin
from tests.support.server import ServerProcess, fake_stt_env


def pytest_report_header(config: pytest.Config) -> str:
    return f"clinscribe test database: {backend.MODE} (CLINSCRIBE_TEST_DATABASE)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not backend.on_postgres():
        if os.environ.get("CLINSCRIBE_TEST_POSTGRES_PASS") == "1":
            # .ci/run runs the Postgres pass too: tests that need a PostgreSQL server (the
            # `postgres` fixture) run there, once, and not in this SQLite pass as well.
            on_postgres = [item for item in items if "postgres" in item.fixturenames]
            if on_postgres:
                config.hook.pytest_deselected(items=on_postgres)
                items[:] = [item for item in items if "postgres" not in item.fixturenames]
        return
    skip = pytest.mark.skip(reason="about SQLite itself (CLINSCRIBE_TEST_DATABASE=postgres)")
    kept, deselected = [], []
    for item in items:
        if item.get_closest_marker("no_database"):
            deselected.append(item)
            continue
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@event.listens_for(Pool, "connect")
def _no_database_guard(dbapi_connection: object, record: object) -> None:
    backend.check_allowed("an SQLAlchemy connection")


@pytest.fixture(autouse=True)
def _database_use_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``no_database`` fails if it opens a database or starts a server."""
    if request.node.get_closest_marker("no_database") is None:
        yield
        return
    backend.forbidden = request.node.nodeid
    try:
        yield
    finally:
        backend.forbidden = None


@pytest.fixture(scope="session", autouse=True)
def _test_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """In postgres mode: the session's cluster, on which servers get their databases."""
    if not backend.on_postgres():
        yield
        return
    backend.use_cluster(request.getfixturevalue("postgres"))
    try:
        yield
    finally:
        backend.use_cluster(None)


@pytest.fixture
def app_database_url(tmp_path: Path) -> str:
    """A fresh, empty app database URL: SQLite in tmp_path, or Postgres in postgres mode."""
    return backend.app_database_url(tmp_path)


@pytest.fixture
def fake_stt() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_server(tmp_path: Path, fake_stt: FakeOpenAIServer) -> Iterator[ServerProcess]:
    """The real service (SQLite or Postgres, DBOS) using the fake STT provider; one per test."""
    server = ServerProcess(tmp_path / "svc", fake_stt_env(fake_stt.base_url))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL server for the session; CI installs it, elsewhere tests skip."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing: .ci/run must install postgresql")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
