"""A 20-minute consultation through each provider's fake: every request within the provider's
limit (checked at the fake), merged transcript word count within 1% of the source, words in
order. The fakes answer with exactly the words spoken in the audio they receive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jiwer
import pytest

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.fakes.reverie import FakeReverieServer
from tests.fakes.sarvam import FakeSarvamServer
from tests.support.oracle import ScriptedRecording, normalise
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

REPEATS = 24  # 24 x 51 s = 20.4 minutes
GROQ_LIMIT_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def recording() -> ScriptedRecording:
    return ScriptedRecording(REPEATS)


@contextmanager
def _provider(name: str, oracle: ScriptedRecording) -> Iterator[tuple[Any, dict[str, str]]]:
    if name == "openai":
        with FakeOpenAIServer(api_key="gsk-test") as fake:
            fake.max_file_bytes = GROQ_LIMIT_BYTES
            fake.transcribe = lambda audio, _d, _f: [s[:3] for s in oracle.segments_in(audio)]
            yield (
                fake,
                {
                    "CLINSCRIBE_STT_PROVIDER": "openai",
                    "CLINSCRIBE_OPENAI_STT__BASE_URL": fake.base_url,
                    "CLINSCRIBE_OPENAI_STT__API_KEY": "gsk-test",
                },
            )
    elif name == "reverie":
        with FakeReverieServer(api_key="rev-key", app_id="rev-app") as fake:
            fake.transcribe = lambda audio, _d: [s[:3] for s in oracle.segments_in(audio)]
            yield (
                fake,
                {
                    "CLINSCRIBE_STT_PROVIDER": "reverie",
                    "CLINSCRIBE_REVERIE__BASE_URL": fake.base_url,
                    "CLINSCRIBE_REVERIE__API_KEY": "rev-key",
                    "CLINSCRIBE_REVERIE__APP_ID": "rev-app",
                    "CLINSCRIBE_REVERIE__POLL_INTERVAL_S": "0.05",
                },
            )
    else:
        with FakeSarvamServer(api_key="sarvam-key") as fake:
            speaker_ids = {"doctor": "0", "patient": "1"}
            fake.transcribe = lambda audio, _d: [
                (a, b, text, speaker_ids[who]) for a, b, text, who in oracle.segments_in(audio)
            ]
            yield (
                fake,
                {
                    "CLINSCRIBE_STT_PROVIDER": "sarvam",
                    "CLINSCRIBE_SARVAM__BASE_URL": fake.base_url,
                    "CLINSCRIBE_SARVAM__API_KEY": "sarvam-key",
                    "CLINSCRIBE_SARVAM__POLL_INTERVAL_S": "0.05",
                },
            )


def _check_limits(name: str, fake: Any) -> int:
    """Assert at the fake that no request broke the provider's limit; return request count."""
    if name == "openai":
        requests = fake.transcription_requests()
        assert max(r.file_bytes for r in requests) <= GROQ_LIMIT_BYTES
        assert all(r.status == 200 for r in requests)
        return len(requests)
    assert fake.limit_violations == 0
    if name == "reverie":
        return len(fake.requests_to("/"))
    return len(fake.blob_puts())


@pytest.mark.parametrize("name", ["openai", "reverie", "sarvam"])
def test_twenty_minute_consultation_through_each_provider(
    name: str, recording: ScriptedRecording, tmp_path: Path
) -> None:
    audio = recording.write(tmp_path / "twenty_minutes.wav")
    with _provider(name, recording) as (fake, env):
        server = ServerProcess(tmp_path / "svc", env | {"CLINSCRIBE_MAX_AUDIO_MINUTES": "30"})
        server.start()
        try:
            consultation_id = server.upload(audio).json()["id"]
            body = server.wait_terminal(consultation_id, timeout_s=240)
            assert body["status"] == "completed", body
            with server.client() as client:
                transcript = client.get(f"/api/consultations/{consultation_id}/transcript").json()
        finally:
            server.kill()
        requests = _check_limits(name, fake)

    utterances = transcript["utterances"]
    starts = [u["start"] for u in utterances]
    assert starts == sorted(starts)
    source = recording.reference_words()
    merged = normalise(" ".join(u["text"] for u in utterances))
    wer = jiwer.wer(" ".join(source), " ".join(merged))
    print(f"{name}: {requests} request(s), source {len(source)} words, merged {len(merged)}, "
          f"word error rate {wer:.4f}")  # fmt: skip
    assert abs(len(merged) - len(source)) <= 0.01 * len(source)
    assert wer <= 0.01  # order preserved: the merged words are the spoken words, in order
    if name == "sarvam":  # diarized: roles assigned from the speaker ids
        assert {u["speaker"] for u in utterances} == {"doctor", "patient"}
