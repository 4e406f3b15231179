"""The Sarvam speech-to-text adapter against the protocol-faithful fake on 127.0.0.1."""

from __future__ import annotations

import hashlib
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from clinscribe.config import RetrySettings, SarvamSettings
from clinscribe.errors import (
    ConfigurationError,
    InvalidAudio,
    ProviderPermanentError,
    ProviderTransientError,
    UnsupportedLanguage,
)
from clinscribe.providers.stt.base import Segment
from clinscribe.providers.stt.sarvam import SarvamSpeechToText
from tests.fakes.openai_compat import CANNED_CONSULTATION
from tests.fakes.sarvam import FakeFault, FakeSarvamServer
from tests.support.audio import CONSULTATION_WAV, DATA

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

API_KEY = "sk_test_sarvam"
FAST_RETRY = RetrySettings(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
# REST timestamps are phrase chunks; the adapter joins them into utterances.
CHUNKS = [
    (0.0, 1.2, "Good morning,", "0"),
    (1.3, 2.5, "what brings you in today?", "0"),
    (3.6, 5.0, "A cough for a week", "1"),
    (5.1, 6.0, "and a fever of 38.2.", "1"),
    (6.2, 7.0, "Any allergies", "0"),
    (8.0, 8.6, "to penicillin?", "0"),
    (9.0, 9.8, "None", "1"),
]


def clip(source: Path, target: Path, seconds: float) -> Path:
    """``seconds`` of ``source``'s speech, repeating it as often as needed."""
    with wave.open(str(source), "rb") as src:
        params = src.getparams()
        frames = src.readframes(src.getnframes())
    wanted = int(seconds * params.framerate) * params.sampwidth * params.nchannels
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes((frames * (wanted // len(frames) + 1))[:wanted])
    return target


def settings(base_url: str, **overrides: Any) -> SarvamSettings:
    values: dict[str, Any] = {"base_url": base_url, "api_key": SecretStr(API_KEY)}
    return SarvamSettings(**(values | overrides))


def adapter(fake: FakeSarvamServer, **options: Any) -> SarvamSpeechToText:
    options = {"poll_interval_s": 0.01, "max_poll_s": 5.0} | options
    key = options.pop("key", API_KEY)
    return SarvamSpeechToText(
        settings(fake.base_url, api_key=SecretStr(key)), FAST_RETRY, **options
    )


def vendor_text_absent(error: Exception) -> bool:
    text = str(error) + str(getattr(error, "to_json", dict)())
    vendor = ["Invalid API key", "Insufficient credits", "Rate limit", "Processing failed"]
    return not any(v in text for v in vendor) and "Good morning" not in text


@pytest.fixture
def fake() -> Iterator[FakeSarvamServer]:
    with FakeSarvamServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def stt(fake: FakeSarvamServer) -> AsyncIterator[SarvamSpeechToText]:
    provider = adapter(fake)
    yield provider
    await provider.aclose()


@pytest.fixture
def short_wav(tmp_path: Path) -> Path:
    return clip(CONSULTATION_WAV, tmp_path / "visit-10s.wav", 10.0)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clip(CONSULTATION_WAV, tmp_path_factory.mktemp("sarvam") / "visit-3min.wav", 180.0)


async def test_short_clip_goes_to_rest_and_chunks_become_utterances(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, short_wav: Path
) -> None:
    fake.transcribe = lambda audio, duration: list(CHUNKS)
    result = await stt.transcribe(short_wav, language="en")

    assert result.segments == [
        Segment(start=0.0, end=2.5, text="Good morning, what brings you in today?"),
        Segment(start=3.6, end=6.0, text="A cough for a week and a fever of 38.2."),
        Segment(start=6.2, end=7.0, text="Any allergies"),  # a 1 s pause ends it
        Segment(start=8.0, end=8.6, text="to penicillin?"),
        Segment(start=9.0, end=9.8, text="None"),
    ]
    assert (result.provider, result.model, result.language) == ("sarvam", "saaras:v3", "en")
    assert result.duration_s == pytest.approx(10.0)
    [request] = fake.requests
    assert request.path == "/speech-to-text" and request.status == 200
    assert request.form == {
        "model": "saaras:v3",
        "mode": "transcribe",
        "language_code": "en-IN",
        "with_timestamps": "true",
    }
    assert request.file_sha256 == hashlib.sha256(short_wav.read_bytes()).hexdigest()
    assert request.headers["api-subscription-key"] == "<redacted>"


async def test_long_words_run_is_cut_near_25_words(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, short_wav: Path
) -> None:
    phrase = "and then the pain moved down the left arm"  # 9 words, no punctuation
    fake.transcribe = lambda audio, duration: [(i, i + 0.9, phrase, "0") for i in range(6)]
    result = await stt.transcribe(short_wav, language="en")

    assert [len(s.text.split()) for s in result.segments] == [27, 27]
    assert [(s.start, s.end) for s in result.segments] == [(0, 2.9), (3, 5.9)]


async def test_long_recording_goes_through_one_diarized_batch_job(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, long_wav: Path
) -> None:
    result = await stt.transcribe(long_wav, language="en")

    assert [s.text for s in result.segments] == CANNED_CONSULTATION
    assert [s.speaker_id for s in result.segments] == ["0", "1"] * 5
    assert all(s.speaker == "unknown" for s in result.segments)  # roles are assigned later
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts) and result.segments[-1].end <= 180.0
    assert result.duration_s == pytest.approx(180.0)
    assert fake.limit_violations == 0 and not fake.requests_to("/speech-to-text")
    [created] = fake.requests_to("/speech-to-text/job/v1")
    assert created.json == {
        "job_parameters": {
            "model": "saaras:v3",
            "language_code": "en-IN",
            "with_timestamps": True,
            "with_diarization": True,
            "mode": "transcribe",
            "num_speakers": 2,
        }
    }
    [put] = fake.blob_puts()
    assert put.headers["x-ms-blob-type"] == "BlockBlob"
    assert "api-subscription-key" not in put.headers  # storage never sees our key
    assert put.file_sha256 == hashlib.sha256(long_wav.read_bytes()).hexdigest()
    assert put.path.endswith("/input/consultation.wav")  # not our local file name
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests if r.method == "POST"] == [
        "v1",
        "upload-files",
        "start",
        "download-files",
    ]


async def test_batch_without_diarization_groups_timestamps(
    fake: FakeSarvamServer, long_wav: Path
) -> None:
    stt = adapter(fake, diarization=False)
    fake.transcribe = lambda audio, duration: list(CHUNKS)
    try:
        result = await stt.transcribe(long_wav, language="hi")
    finally:
        await stt.aclose()

    assert [s.text for s in result.segments][:2] == [
        "Good morning, what brings you in today?",
        "A cough for a week and a fever of 38.2.",
    ]
    assert all(s.speaker_id is None for s in result.segments)
    [created] = fake.requests_to("/speech-to-text/job/v1")
    parameters = created.json["job_parameters"]
    assert parameters["with_diarization"] is False and "num_speakers" not in parameters
    assert parameters["language_code"] == "hi-IN"


@pytest.mark.parametrize(("ours", "theirs"), [("ta", "ta-IN"), ("or", "od-IN"), ("HI", "hi-IN")])
async def test_language_is_sent_in_sarvams_spelling(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, short_wav: Path, ours: str, theirs: str
) -> None:
    result = await stt.transcribe(short_wav, language=ours)

    assert fake.requests[0].form["language_code"] == theirs
    assert result.language == ours


async def test_unsupported_language_is_refused_before_any_request(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, short_wav: Path
) -> None:
    with pytest.raises(UnsupportedLanguage):
        await stt.transcribe(short_wav, language="fr")
    assert not fake.requests


async def test_unreadable_audio_is_refused_before_any_request(
    fake: FakeSarvamServer, stt: SarvamSpeechToText
) -> None:
    with pytest.raises(InvalidAudio):
        await stt.transcribe(DATA / "not_audio.txt", language="en")
    assert not fake.requests


async def test_bad_key_fails_at_once_as_auth_error(fake: FakeSarvamServer, short_wav: Path) -> None:
    stt = adapter(fake, key="sk_wrong")
    try:
        with pytest.raises(ProviderPermanentError) as caught:
            await stt.transcribe(short_wav, language="en")
    finally:
        await stt.aclose()

    assert caught.value.code == "provider_auth_failed" and caught.value.http_status == 403
    assert len(fake.requests) == 1
    assert vendor_text_absent(caught.value)


async def test_insufficient_quota_is_permanent_and_distinct(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, short_wav: Path
) -> None:
    fake.faults.append(FakeFault.insufficient_quota())
    with pytest.raises(ProviderPermanentError) as caught:
        await stt.transcribe(short_wav, language="en")

    assert caught.value.code == "provider_quota_exhausted"
    assert len(fake.requests) == 1
    assert vendor_text_absent(caught.value)


async def test_rate_limits_are_retried_then_succeed(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, short_wav: Path
) -> None:
    fake.faults.extend([FakeFault.rate_limited(), FakeFault.rate_limited(status=503)])
    result = await stt.transcribe(short_wav, language="en")

    assert len(result.segments) == len(CANNED_CONSULTATION)
    assert [r.status for r in fake.requests] == [429, 503, 200]


async def test_rate_limits_exhaust_the_retries_as_transient(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, short_wav: Path
) -> None:
    fake.faults.extend([FakeFault.rate_limited()] * 3)
    with pytest.raises(ProviderTransientError) as caught:
        await stt.transcribe(short_wav, language="en")

    assert caught.value.code == "provider_rate_limited"
    assert len(fake.requests) == FAST_RETRY.max_attempts
    assert vendor_text_absent(caught.value)


async def test_batch_steps_retry_on_their_own(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, long_wav: Path
) -> None:
    fake.faults.extend([FakeFault.internal(), FakeFault.rate_limited()])  # job creation
    result = await stt.transcribe(long_wav, language="en")

    assert len(result.segments) == len(CANNED_CONSULTATION)
    assert len(fake.jobs) == 1 and len(fake.blob_puts()) == 1
    assert [r.status for r in fake.requests_to("/speech-to-text/job/v1")] == [500, 429, 200]


async def test_failed_job_is_permanent(
    fake: FakeSarvamServer, stt: SarvamSpeechToText, long_wav: Path
) -> None:
    fake.fail_jobs = True
    with pytest.raises(ProviderPermanentError) as caught:
        await stt.transcribe(long_wav, language="en")

    assert caught.value.code == "provider_job_failed"
    assert not fake.requests_to("/download-files")
    assert vendor_text_absent(caught.value)


async def test_job_that_never_finishes_times_out_as_transient(
    fake: FakeSarvamServer, long_wav: Path
) -> None:
    fake.polls_to_complete = 10**6
    stt = adapter(fake, max_poll_s=0.2)
    try:
        with pytest.raises(ProviderTransientError) as caught:
            await stt.transcribe(long_wav, language="en")
    finally:
        await stt.aclose()

    assert caught.value.code == "provider_job_timeout"
    assert len(fake.requests_to("/status")) >= 2
    assert not fake.requests_to("/download-files")


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        SarvamSpeechToText(SarvamSettings(), FAST_RETRY)

    assert "CLINSCRIBE_SARVAM__API_KEY" in caught.value.message
    assert caught.value.code == "missing_api_key"


def test_capabilities_let_long_recordings_reach_one_diarized_batch_job() -> None:
    capabilities = SarvamSpeechToText.capabilities

    # Not 30 s (the REST limit): the pipeline must not cut a consultation into pieces whose
    # speaker ids would not agree; the adapter picks REST or batch itself.
    assert capabilities.max_seconds_per_request == 3600
    assert capabilities.diarization and capabilities.needs_key
    assert capabilities.languages == frozenset(
        {"en", "hi", "ta", "te", "kn", "ml", "mr", "bn", "gu", "pa", "or"}
    )
