"""The provider answers 429 with retry-after to 30% of requests: every consultation completes
and no retry is sent before its retry-after has elapsed (checked at the fake)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.openai_compat import FakeOpenAIServer, canned_consultation
from tests.support.audio import SHORT_WAV, padded_copy
from tests.support.oracle import ScriptedRecording
from tests.support.server import ServerProcess, fake_stt_env

pytestmark = pytest.mark.slow

RETRY_AFTER_S = 1.0


def test_thirty_percent_429s_delay_but_never_fail_consultations(tmp_path: Path) -> None:
    long_recording = ScriptedRecording(repeats=4)  # 204 s, cut into ~16 s pieces
    with FakeOpenAIServer() as fake:
        fake.rate_limit_fraction = 0.3
        fake.rate_limit_retry_after_s = RETRY_AFTER_S
        fake.transcribe = lambda audio, duration, form: (
            [s[:3] for s in long_recording.segments_in(audio)]
            if _is_piece(long_recording, audio)
            else canned_consultation(audio, duration, form)
        )
        env = fake_stt_env(fake.base_url) | {
            "CLINSCRIBE_OPENAI_STT__MAX_FILE_MB": "0.5",
            "CLINSCRIBE_RETRY__MAX_ATTEMPTS": "10",  # 0.3^10: a run of 429s never exhausts
        }
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            ids = [server.upload(long_recording.write(tmp_path / "long.wav")).json()["id"]]
            for index in range(3):
                clip = padded_copy(SHORT_WAV, tmp_path / f"short{index}.wav", 0.3 * index)
                ids.append(server.upload(clip).json()["id"])
            bodies = [server.wait_terminal(cid, timeout_s=180) for cid in ids]
        finally:
            server.kill()
    assert [b["status"] for b in bodies] == ["completed"] * len(ids), bodies

    requests = fake.transcription_requests()
    limited = [r for r in requests if r.status == 429]
    assert len(limited) >= 0.15 * len(requests), (len(limited), len(requests))
    for rejected in limited:
        assert rejected.finished_at is not None
        retry = next(
            r for r in requests
            if r.file_sha256 == rejected.file_sha256 and r.received_at > rejected.received_at
        )  # fmt: skip
        waited = retry.received_at - rejected.finished_at
        assert waited >= RETRY_AFTER_S, f"retried after {waited:.3f} s"
    print(f"{len(requests)} requests, {len(limited)} answered 429; every retry waited "
          f">= {RETRY_AFTER_S} s")  # fmt: skip


def _is_piece(recording: ScriptedRecording, audio: bytes) -> bool:
    try:
        recording.locate(audio)
    except AssertionError:
        return False
    return True
