"""Recordings longer than a provider takes in one request: cut at silences, each piece its own
checkpoint, merged back in order. The fake provider transcribes with the real tiny.en model,
so the merge is checked on real speech."""

from __future__ import annotations

import json
import tempfile
import time
import wave
from pathlib import Path

import jiwer
import pytest

from clinscribe.providers.stt.whisper_models import resolve_model_dir
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.audio import CONSULTATION_WAV, DATA
from tests.support.oracle import normalise
from tests.support.server import ServerProcess, fake_stt_env

pytestmark = pytest.mark.slow

LIMIT_MB = 0.5  # ~16 s of 16 kHz WAV per request
REPEATS = 2


def _long_recording(target: Path) -> Path:
    with wave.open(str(CONSULTATION_WAV), "rb") as src:
        params, frames = src.getparams(), src.readframes(src.getnframes())
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        for _ in range(REPEATS):
            out.writeframes(frames)
    return target


class WhisperBehindTheApi:
    """The fake's transcriber: real tiny.en on whatever audio the service sends."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            str(resolve_model_dir("tiny.en", Path(tempfile.gettempdir()))),
            device="cpu", compute_type="int8",
        )  # fmt: skip

    def __call__(
        self, audio: bytes, duration: float | None, form: dict[str, str]
    ) -> list[tuple[float, float, str]]:
        with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
            handle.write(audio)
            handle.flush()
            segments, _ = self.model.transcribe(handle.name, language="en", beam_size=1)
            return [(s.start, s.end, s.text.strip()) for s in segments if s.text.strip()]


@pytest.fixture(scope="module")
def whisper() -> WhisperBehindTheApi:
    return WhisperBehindTheApi()


def _server(tmp_path: Path, fake: FakeOpenAIServer, **extra: str) -> ServerProcess:
    env = fake_stt_env(fake.base_url) | {
        "CLINSCRIBE_OPENAI_STT__MAX_FILE_MB": str(LIMIT_MB),
        "CLINSCRIBE_MAX_UPLOAD_MB": "50",
    }
    return ServerProcess(tmp_path / "svc", env | extra)


def test_long_recording_is_split_within_the_limit_and_merged_in_order(
    tmp_path: Path, whisper: WhisperBehindTheApi
) -> None:
    recording = _long_recording(tmp_path / "long.wav")
    with FakeOpenAIServer() as fake:
        fake.max_file_bytes = int(LIMIT_MB * 1024 * 1024)  # the fake refuses bigger files
        fake.transcribe = whisper
        server = _server(tmp_path, fake)
        server.start()
        try:
            consultation_id = server.upload(recording).json()["id"]
            body = server.wait_terminal(consultation_id, timeout_s=120)
            assert body["status"] == "completed", body
            with server.client() as client:
                transcript = client.get(f"/api/consultations/{consultation_id}/transcript").json()
        finally:
            server.kill()
    requests = fake.transcription_requests()
    assert len(requests) >= 6  # 102 s in pieces of at most ~16 s
    assert all(r.status == 200 for r in requests)
    assert max(r.file_bytes or 0 for r in requests) <= LIMIT_MB * 1024 * 1024
    assert "chunk transcribed" in server.log_text()

    starts = [u["start"] for u in transcript["utterances"]]
    assert starts == sorted(starts)
    reference = json.loads((DATA / "consultation_en.json").read_text())["text"]
    expected = normalise(reference) * REPEATS
    merged = normalise(" ".join(u["text"] for u in transcript["utterances"]))
    wer = jiwer.wer(" ".join(expected), " ".join(merged))
    print(f"words: source {len(expected)}, merged {len(merged)}, WER {wer:.3f}")
    assert abs(len(merged) - len(expected)) <= 0.05 * len(expected)
    assert wer < 0.25
    # The dialogue's opening and closing lines appear once per repeat: no seam duplicated them.
    text = " ".join(merged)
    for phrase in ("good morning", "my cough started three days ago", "is it serious"):
        assert text.count(phrase) == REPEATS, (phrase, text)


def test_crash_while_pieces_are_in_flight_resends_only_unfinished_pieces(
    tmp_path: Path, whisper: WhisperBehindTheApi
) -> None:
    recording = _long_recording(tmp_path / "long.wav")
    with FakeOpenAIServer(latency_s=2.0) as fake:
        fake.transcribe = whisper
        server = _server(tmp_path, fake, CLINSCRIBE_STT_CONCURRENCY="2")
        server.start()
        try:
            consultation_id = server.upload(recording).json()["id"]
            deadline = time.monotonic() + 60
            stored = 0
            while time.monotonic() < deadline:
                with server.db() as db:
                    stored = db.execute("select count(*) from transcript_chunks").fetchone()[0]
                fresh = [
                    r for r in fake.transcription_requests()
                    if r.finished_at is None and r.file_sha256
                    and time.monotonic() - r.received_at < 1.0
                ]  # fmt: skip
                if stored >= 2 and fresh:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("never saw stored and in-flight pieces together")
            server.kill()
            with server.db() as db:
                stored = db.execute("select count(*) from transcript_chunks").fetchone()[0]
            killed_at = time.monotonic()
            server.start()
            body = server.wait_terminal(consultation_id, timeout_s=120)
            assert body["status"] == "completed", body
        finally:
            server.kill()
    pieces = {r.file_sha256 for r in fake.transcription_requests()}
    after = [r for r in fake.transcription_requests() if r.received_at > killed_at]
    # Exactly the pieces without a stored result were sent again: none twice, none lost.
    assert len(after) == len(pieces) - stored
    assert len({r.file_sha256 for r in after}) == len(after)
