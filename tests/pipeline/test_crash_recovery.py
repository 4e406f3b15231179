"""Crash recovery: SIGKILL the real server mid-transcription; every consultation still completes
and no step that had finished runs again (counted at the fake provider)."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from tests.fakes.openai_compat import FakeOpenAIServer, RecordedRequest, canned_consultation
from tests.support.audio import SHORT_WAV, padded_copy
from tests.support.server import ServerProcess, fake_stt_env

pytestmark = pytest.mark.slow

MARKER = re.compile(r"recording ([0-9a-f]{12})")


def _marked(
    audio: bytes, duration: float | None, form: dict[str, str]
) -> list[tuple[float, float, str]]:
    """The canned consultation, tagged with the audio's hash so tests can map request <-> row."""
    segments = canned_consultation(audio, duration, form)
    start, end, text = segments[0]
    tag = hashlib.sha256(audio).hexdigest()[:12]
    return [(start, end, f"{text} recording {tag}."), *segments[1:]]


def _transcribed_ids(server: ServerProcess) -> set[str]:
    with server.db() as db:
        return {row[0] for row in db.execute("select consultation_id from transcripts")}


def test_sigkill_mid_transcription_recovers_without_repeating_finished_steps(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer(latency_s=3.0) as fake:
        fake.transcribe = _marked
        env = fake_stt_env(fake.base_url) | {"CLINSCRIBE_WORKER_CONCURRENCY": "2"}
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            ids = []
            for index in range(5):
                clip = padded_copy(SHORT_WAV, tmp_path / f"visit{index}.wav", 0.5 + index * 0.3)
                response = server.upload(clip)
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])

            # Wait until some transcriptions have finished and others are in flight with at
            # least half of the fake's 3 s latency still ahead, so they cannot finish before
            # the kill lands.
            deadline = time.monotonic() + 60
            fresh: list[RecordedRequest] = []
            while time.monotonic() < deadline:
                now = time.monotonic()
                fresh = [
                    r
                    for r in fake.transcription_requests()
                    if r.finished_at is None and r.file_sha256 and now - r.received_at < 1.5
                ]
                if len(_transcribed_ids(server)) >= 2 and fresh:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("never saw finished and in-flight transcriptions together")
            server.kill()
            finished_before_kill = _transcribed_ids(server)
            killed_at = time.monotonic()
            in_flight_hashes = {r.file_sha256[:12] for r in fresh if r.file_sha256}
            assert finished_before_kill and in_flight_hashes
            assert len(finished_before_kill) < 5

            server.start()
            bodies = [server.wait_terminal(cid, timeout_s=90) for cid in ids]
            assert [b["status"] for b in bodies] == ["completed"] * 5, bodies

            hash_of: dict[str, str] = {}
            with server.client() as client:
                for cid in ids:
                    transcript = client.get(f"/api/consultations/{cid}/transcript").json()
                    match = MARKER.search(transcript["utterances"][0]["text"])
                    assert match, transcript
                    hash_of[cid] = match.group(1)
            after_restart = [
                r.file_sha256[:12]
                for r in fake.transcription_requests()
                if r.received_at > killed_at and r.file_sha256
            ]
            # Finished transcriptions were not sent again (no double billing) ...
            for cid in finished_before_kill:
                assert hash_of[cid] not in after_restart, f"{cid} transcribed twice"
            # ... the interrupted ones were, and every consultation was transcribed exactly once
            # after its last interruption.
            assert in_flight_hashes <= set(after_restart)
            for cid in ids:
                assert after_restart.count(hash_of[cid]) <= 1
            log = server.log_text()
            for cid in finished_before_kill:
                assert len(re.findall(rf"audio prepared .*consultation_id={cid}", log)) == 1
                assert len(re.findall(rf"transcription completed.*consultation_id={cid}", log)) == 1
        finally:
            server.kill()


def test_sigterm_exits_promptly_and_restart_finishes_the_work(tmp_path: Path) -> None:
    with FakeOpenAIServer(latency_s=2.0) as fake:
        server = ServerProcess(tmp_path / "svc", fake_stt_env(fake.base_url))
        server.start()
        try:
            ids = [server.upload(SHORT_WAV).json()["id"] for _ in range(3)]
            deadline = time.monotonic() + 30
            while not fake.transcription_requests() and time.monotonic() < deadline:
                time.sleep(0.05)
            started = time.monotonic()
            code = server.stop(timeout_s=40)
            # uvicorn re-raises the signal after a clean shutdown, so -SIGTERM is clean too.
            assert code in (0, -15), server.log_text()[-2000:]
            assert "Application shutdown complete" in server.log_text()
            assert time.monotonic() - started < 25  # CLINSCRIBE_SHUTDOWN_GRACE_S=20 + margin
            # The in-flight transcriptions were allowed to finish, not cut off.
            assert "provider call will be retried" not in server.log_text()
            server.start()
            bodies = [server.wait_terminal(cid, timeout_s=60) for cid in ids]
            assert [b["status"] for b in bodies] == ["completed"] * 3
        finally:
            server.kill()
