"""The command line, run as a user would (subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess, fake_stt_env


def _run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLINSCRIBE_")}
    return subprocess.run(
        [sys.executable, "-m", "clinscribe.cli", *args],
        env=base | (env or {}), cwd=cwd, input=stdin, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def test_help_lists_the_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("serve", "worker", "transcribe", "note", "db"):
        assert command in result.stdout


def test_note_from_a_text_transcript(tmp_path: Path) -> None:
    transcript = tmp_path / "visit.txt"
    transcript.write_text(
        "[doctor] What brings you in today?\n"
        "[patient] I have had a cough for 3 days.\n"
        "[doctor] Your temperature is 38.2 degrees.\n"
        "[doctor] This looks like acute bronchitis.\n"
        "[doctor] I will prescribe amoxicillin 500 milligrams three times a day.\n"
    )
    result = _run("note", str(transcript), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("## Subjective", "## Objective", "## Assessment", "## Plan"):
        assert title in out
    assert "38.2 degrees.  (u3)" in out
    assert "amoxicillin 500 milligrams" in out

    as_json = _run("note", str(transcript), "--json", "--template", "apso", cwd=tmp_path)
    assert as_json.returncode == 0
    assert '"template": "apso"' in as_json.stdout


def test_transcribe_with_local_tiny_en(tmp_path: Path) -> None:
    env = {"CLINSCRIBE_LOCAL_STT__MODEL": "tiny.en", "CLINSCRIBE_DATA_DIR": str(tmp_path)}
    result = _run("transcribe", str(SHORT_WAV), "--language", "en", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fever" in result.stdout.lower()
    refused = _run("transcribe", str(SHORT_WAV), "--language", "ta", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert "not supported" in refused.stderr and "en" in refused.stderr


def test_transcribe_refuses_non_audio_clearly(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    result = _run("transcribe", str(text), env={"CLINSCRIBE_DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 2
    assert "not audio" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = _run("db", "upgrade", env={"CLINSCRIBE_DATA_DIR": str(tmp_path / "d")}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "clinscribe.sqlite3").is_file()


@pytest.mark.slow
def test_worker_finishes_what_a_dead_server_left(tmp_path: Path) -> None:
    """`clinscribe worker` recovers consultations accepted by a server that then died."""
    with FakeOpenAIServer(latency_s=1.5) as fake:
        env = fake_stt_env(fake.base_url)
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        ids = [server.upload(SHORT_WAV).json()["id"] for _ in range(3)]
        server.kill()

        worker_env = server._env() | env
        worker = subprocess.Popen(
            [sys.executable, "-m", "clinscribe.cli", "worker"], env=worker_env,
            cwd=server.data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            statuses: list[str] = []
            while time.monotonic() < deadline:
                with server.db() as db:
                    statuses = [
                        db.execute(
                            "select status from consultations where id = ?", (cid,)
                        ).fetchone()[0]
                        for cid in ids
                    ]
                if all(s == "completed" for s in statuses):
                    break
                time.sleep(0.2)
            assert statuses == ["completed"] * 3
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            code = worker.wait(timeout=30)
        assert code == 0, worker.stderr.read() if worker.stderr else ""


def test_a_bad_setting_is_named_in_one_line(tmp_path: Path) -> None:
    result = _run("db", "upgrade", env={"CLINSCRIBE_WORKER_CONCURRENCY": "0"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: CLINSCRIBE_WORKER_CONCURRENCY:")
    assert "Traceback" not in result.stderr
