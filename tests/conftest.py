"""Shared fixtures: a fake OpenAI-compatible STT server and the real service as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_compat import FakeOpenAIServer
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
