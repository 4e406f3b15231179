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
from tests.support import backend
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
    env = {"CLINSCRIBE_DATA_DIR": str(tmp_path / "d")} | backend.database_env(tmp_path / "d")
    result = _run("db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with backend.read_only(backend.data_dir_database_url(tmp_path / "d")) as db:
        assert db.execute("select count(*) from consultations").fetchone() == (0,)


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


def test_doctor_reports_what_to_fix(tmp_path: Path) -> None:
    base = {"CLINSCRIBE_DATA_DIR": str(tmp_path / "d")} | backend.database_env(tmp_path / "d")
    assert _run("db", "upgrade", env=base, cwd=tmp_path).returncode == 0
    with FakeOpenAIServer(api_key="right-key") as fake:
        stt = {
            "CLINSCRIBE_STT_PROVIDER": "openai",
            "CLINSCRIBE_OPENAI_STT__BASE_URL": fake.base_url,
        }
        good = _run(
            "doctor", env=base | stt | {"CLINSCRIBE_OPENAI_STT__API_KEY": "right-key"}, cwd=tmp_path
        )
        assert good.returncode == 0, good.stdout + good.stderr
        assert "ok    speech-to-text (openai): model whisper-large-v3" in good.stdout
        assert "right-key" not in good.stdout

        wrong = _run(
            "doctor", env=base | stt | {"CLINSCRIBE_OPENAI_STT__API_KEY": "nope"}, cwd=tmp_path
        )
        assert wrong.returncode == 1
        assert (
            "key was rejected" in wrong.stdout and "CLINSCRIBE_OPENAI_STT__API_KEY" in wrong.stdout
        )

        model = _run(
            "doctor",
            env=base
            | stt
            | {
                "CLINSCRIBE_OPENAI_STT__API_KEY": "right-key",
                "CLINSCRIBE_OPENAI_STT__MODEL": "whisper-9",
            },
            cwd=tmp_path,
        )
        assert model.returncode == 1 and "model 'whisper-9' is not offered" in model.stdout
    missing = _run("doctor", env=base | {"CLINSCRIBE_STT_PROVIDER": "sarvam"}, cwd=tmp_path)
    assert missing.returncode == 1 and "CLINSCRIBE_SARVAM__API_KEY" in missing.stdout
    local = _run("doctor", env=base | {"CLINSCRIBE_LOCAL_STT__MODEL": "tiny.en"}, cwd=tmp_path)
    assert local.returncode == 0, local.stdout
    assert "WARN  encryption at rest: OFF" in local.stdout
    key = _run("keys", "generate").stdout.strip()
    encrypted = _run(
        "doctor",
        env=base | {"CLINSCRIBE_LOCAL_STT__MODEL": "tiny.en", "CLINSCRIBE_ENCRYPTION_KEY": key},
        cwd=tmp_path,
    )
    assert encrypted.returncode == 0 and "ok    encryption at rest: AES-256-GCM" in encrypted.stdout
    assert key not in encrypted.stdout
    pending = _run(
        "doctor",
        env={
            "CLINSCRIBE_DATA_DIR": str(tmp_path / "fresh"),
            "CLINSCRIBE_LOCAL_STT__MODEL": "tiny.en",
        }
        | backend.database_env(tmp_path / "fresh"),
        cwd=tmp_path,
    )
    assert pending.returncode == 1 and "clinscribe db upgrade" in pending.stdout


def test_serve_refuses_the_llm_writer_without_a_key(tmp_path: Path) -> None:
    """Refused at start: otherwise every consultation would be transcribed (and paid for)
    before failing at the note."""
    env = {"CLINSCRIBE_DATA_DIR": str(tmp_path / "d"), "CLINSCRIBE_NOTE_PROVIDER": "llm"}
    for command in ("serve", "worker"):
        result = _run(command, env=env, cwd=tmp_path)
        assert result.returncode == 2
        assert "CLINSCRIBE_LLM__API_KEY" in result.stderr, result.stderr
    doctor = _run("doctor", env=env | {"CLINSCRIBE_LOCAL_STT__MODEL": "tiny.en"}, cwd=tmp_path)
    assert "FAIL  note writer (llm)" in doctor.stdout
