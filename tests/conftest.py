"""Shared fixtures: a fake OpenAI-compatible STT server and the real service as a subprocess."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.postgres import PostgresCluster, postgres_bin
from tests.support.server import ServerProcess, fake_stt_env


@pytest.fixture
def fake_stt() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_server(tmp_path: Path, fake_stt: FakeOpenAIServer) -> Iterator[ServerProcess]:
    """The real service (SQLite, DBOS) using the fake STT provider; one per test."""
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
