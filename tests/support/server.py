"""Run the real `clinscribe serve` as a subprocess for tests (and kill it like a crash would)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from clinscribe.models import Role
from clinscribe.security.crypto import Keyring, generate_key, keyring_from_keys
from tests.support import backend
from tests.support.accounts import Account, bearer, provision

TERMINAL = {"completed", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_stt_env(base_url: str) -> dict[str, str]:
    """Settings that point the service at a fake OpenAI-compatible STT server."""
    return {
        "CLINSCRIBE_STT_PROVIDER": "openai",
        "CLINSCRIBE_OPENAI_STT__BASE_URL": base_url,
        "CLINSCRIBE_OPENAI_STT__API_KEY": "test-key",
        "CLINSCRIBE_RETRY__BASE_DELAY_S": "0.05",
        "CLINSCRIBE_RETRY__MAX_DELAY_S": "0.5",
    }


class ServerProcess:
    """``clinscribe serve`` (``args``: e.g. ``("serve", "--no-worker")`` for an API-only
    process, or ``("worker",)`` for a worker, which has no HTTP and is ready once it logs
    that it started)."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, *, args: tuple[str, ...] = ()
    ) -> None:
        self.data_dir = data_dir
        self.args = args or ("serve",)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Processes sharing a data directory (an API and its workers) keep their own logs.
        role = "" if self.args == ("serve",) else "-".join(self.args).replace("--", "")
        self.log_path = data_dir / (f"{role}-{self.port}.log" if role else "server.log")
        # CLINSCRIBE_TEST_DATABASE=postgres: Postgres databases unless ``env`` names some.
        self.extra_env = backend.server_databases(data_dir, env or {}) | (env or {})
        self.process: subprocess.Popen[bytes] | None = None
        # Like production: encrypted at rest. One key per server (kept across restarts).
        self.encryption_key = generate_key()
        self._account: Account | None = None

    @property
    def database_url(self) -> str:
        default = f"sqlite:///{self.data_dir / 'clinscribe.sqlite3'}"
        return self.extra_env.get("CLINSCRIBE_DATABASE_URL", default)

    @property
    def account(self) -> Account:
        """The clinic and clinician API key requests are made with (created on first use)."""
        if self._account is None:
            self._account = self.provision()
        return self._account

    def provision(
        self, clinic: str = "Test Clinic", *, role: Role = Role.CLINICIAN, email: str | None = None
    ) -> Account:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return provision(self.database_url, clinic, role=role, email=email)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLINSCRIBE_")}
        env.update(
            {
                "CLINSCRIBE_DATA_DIR": str(self.data_dir),
                "CLINSCRIBE_HOST": "127.0.0.1",
                "CLINSCRIBE_PORT": str(self.port),
                "CLINSCRIBE_LOG_LEVEL": "INFO",
                "CLINSCRIBE_LOCAL_STT__MODEL": "tiny.en",
                "CLINSCRIBE_LOCAL_STT__BEAM_SIZE": "1",
                "CLINSCRIBE_ENCRYPTION_KEY": self.encryption_key,
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout_s: float = 60.0, *, ready_path: str = "/readyz") -> None:
        """Start and wait until ``ready_path`` answers 200 (``/healthz``: alive, maybe unready)."""
        backend.check_allowed("a clinscribe server")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.args[0] != "worker":
            self.account  # noqa: B018  (migrates and provisions before the server starts)
        log = self.log_path.open("ab")
        log_start = log.tell()  # a restart appends: only what this process writes counts
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clinscribe.cli", *self.args],
            cwd=self.data_dir,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()[-3000:]}")
            if self.args[0] == "worker":
                if "worker started" in self.log_text()[log_start:]:
                    return
                time.sleep(0.1)
                continue
            try:
                if httpx.get(f"{self.base_url}{ready_path}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not become ready:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hooks run, like a host dying."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, account: Account | None = None) -> httpx.Client:
        """An HTTP client authenticated with ``account`` (default: the test clinic's key)."""
        headers = bearer(account or self.account)
        return httpx.Client(base_url=self.base_url, timeout=30, headers=headers)

    def upload(
        self, audio: Path | bytes, *, filename: str = "visit.wav", **fields: str
    ) -> httpx.Response:
        content = audio.read_bytes() if isinstance(audio, Path) else audio
        with self.client() as client:
            return client.post(
                "/api/consultations",
                files={"audio": (filename, content, "audio/wav")},
                data=fields,
            )

    def wait_terminal(self, consultation_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        body: dict[str, Any] = {}
        with self.client() as client:
            while time.monotonic() < deadline:
                body = client.get(f"/api/consultations/{consultation_id}").json()
                if body.get("status") in TERMINAL:
                    return body
                time.sleep(0.1)
        raise AssertionError(f"not terminal after {timeout_s}s: {body}\n{self.log_text()[-3000:]}")

    def keyring(self) -> Keyring:
        """The server's keyring, to read encrypted values from its database in tests."""
        return keyring_from_keys(self.encryption_key)

    def db(self) -> sqlite3.Connection | backend.ReadOnlyPostgres:
        """A read-only connection to the app database: ``execute(sql, params)`` with ``?``
        placeholders, on SQLite or (CLINSCRIBE_TEST_DATABASE=postgres) Postgres."""
        if self.database_url.startswith("postgresql"):
            return backend.read_only(self.database_url)
        path = self.data_dir / "clinscribe.sqlite3"
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
