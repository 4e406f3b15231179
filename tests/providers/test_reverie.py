"""The Reverie speech-to-text adapter against the protocol-faithful fake on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from clinscribe.config import RetrySettings, ReverieSettings
from clinscribe.errors import (
    ConfigurationError,
    InvalidAudio,
    ProviderPermanentError,
    ProviderTransientError,
    UnsupportedLanguage,
)
from clinscribe.providers.stt.base import Segment, SpeechToText
from clinscribe.providers.stt.reverie import ReverieSpeechToText
from tests.fakes.openai_compat import CANNED_CONSULTATION
from tests.fakes.reverie import FakeFault, FakeReverieServer, job_answer
from tests.support.audio import CONSULTATION_WAV, SHORT_WAV

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

API_KEY, APP_ID = "rev-key-123", "rev-app-456"
FAST_RETRY = RetrySettings(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
POLL = {"poll_interval_s": 0.01, "max_poll_s": 5.0}
# What the fake "hears": if any of it shows up in an error message, PHI would leak into logs.
SPOKEN = "Mrs Okafor has had a fever since Monday."


def settings(base_url: str, **overrides: Any) -> ReverieSettings:
    values: dict[str, Any] = {"api_key": SecretStr(API_KEY), "app_id": APP_ID}
    return ReverieSettings(**(values | {"base_url": base_url} | overrides))


def assert_no_vendor_text_in(error: Exception, *vendor_texts: str) -> None:
    text = str(error) + str(getattr(error, "to_json", dict)())
    for vendor_text in (SPOKEN, "Okafor", *vendor_texts):
        assert vendor_text not in text


@pytest.fixture(scope="module")
def six_minute_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """360 s of 16 kHz speech: the 51 s consultation clip repeated, cut at six minutes."""
    target = tmp_path_factory.mktemp("audio") / "six_minutes.wav"
    with wave.open(str(CONSULTATION_WAV), "rb") as source:
        params = source.getparams()
        frames = source.readframes(source.getnframes())
    wanted = 360 * params.framerate * params.sampwidth
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes((frames * (wanted // len(frames) + 1))[:wanted])
    return target


@pytest.fixture
def fake() -> Iterator[FakeReverieServer]:
    with FakeReverieServer(api_key=API_KEY, app_id=APP_ID) as server:
        yield server


@pytest.fixture
async def stt(fake: FakeReverieServer) -> AsyncIterator[ReverieSpeechToText]:
    adapter = ReverieSpeechToText(settings(fake.base_url), FAST_RETRY, **POLL)
    yield adapter
    await adapter.aclose()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_satisfies_the_speech_to_text_protocol() -> None:
    adapter: SpeechToText = ReverieSpeechToText(settings("http://127.0.0.1:9"), FAST_RETRY)
    await adapter.aclose()
    assert (adapter.name, adapter.model) == ("reverie", "reverie-generic")
    assert adapter.capabilities.max_seconds_per_request == 300
    assert adapter.capabilities.languages is not None
    assert {"en", "hi", "ta", "as"} <= adapter.capabilities.languages
    assert not adapter.capabilities.diarization and adapter.capabilities.needs_key


# -- stt_file --------------------------------------------------------------------------------


async def test_short_clip_goes_to_stt_file_with_the_documented_headers(
    fake: FakeReverieServer, stt: ReverieSpeechToText
) -> None:
    result = await stt.transcribe(SHORT_WAV, language="en")
    (request,) = fake.requests
    assert (request.path, request.method, request.status) == ("/", "POST", 200)
    headers = request.headers
    assert headers["rev-appname"] == "stt_file"
    assert headers["rev-api-key"] == "<redacted>"  # sent, and accepted by the key check
    assert headers["rev-app-id"] == APP_ID
    assert (headers["src_lang"], headers["domain"], headers["format"]) == (
        "en",
        "generic",
        "16k_int16",
    )
    assert headers["logging"] == "false"  # Reverie keeps neither audio nor transcript
    assert headers["punctuate"] == "true"
    assert request.file_field == "audio_file"
    assert request.file_sha256 == hashlib.sha256(SHORT_WAV.read_bytes()).hexdigest()
    # No timestamps from stt_file: one segment spanning the clip, the punctuated display text.
    (segment,) = result.segments
    expected = " ".join(CANNED_CONSULTATION)
    assert (segment.start, segment.text) == (0.0, expected)
    assert segment.end == pytest.approx(4.659, abs=0.001)
    assert (result.language, result.provider, result.model) == ("en", "reverie", "reverie-generic")
    assert result.duration_s == pytest.approx(4.659, abs=0.001)


async def test_plain_text_is_used_when_display_text_is_empty(
    fake: FakeReverieServer, stt: ReverieSpeechToText
) -> None:
    body = {"id": "x1", "success": True, "final": True, "text": "fever since monday"}
    fake.faults.append(FakeFault(200, body | {"display_text": "", "confidence": 0.9}))
    result = await stt.transcribe(SHORT_WAV, language="en")
    assert [s.text for s in result.segments] == ["fever since monday"]


async def test_code_mixed_language_passes_through_unpunctuated(
    fake: FakeReverieServer, stt: ReverieSpeechToText
) -> None:
    await stt.transcribe(SHORT_WAV, language="hi_en")
    (request,) = fake.requests
    assert request.headers["src_lang"] == "hi_en"
    assert "punctuate" not in request.headers  # documented for en and hi only


async def test_unsupported_language_fails_before_any_request(
    fake: FakeReverieServer, stt: ReverieSpeechToText
) -> None:
    with pytest.raises(UnsupportedLanguage):
        await stt.transcribe(SHORT_WAV, language="fr")
    assert fake.requests == []


async def test_audio_that_is_not_16k_mono_wav_fails_before_any_request(
    fake: FakeReverieServer, stt: ReverieSpeechToText, tmp_path: Path
) -> None:
    eight_k = tmp_path / "8k.wav"
    with wave.open(str(eight_k), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000)
    for audio in (eight_k, Path(__file__).parents[1] / "data" / "not_audio.txt"):
        with pytest.raises(InvalidAudio):
            await stt.transcribe(audio, language="en")
    assert fake.requests == []


# -- stt_batch -------------------------------------------------------------------------------


async def test_six_minutes_go_through_the_batch_job_api(
    fake: FakeReverieServer, stt: ReverieSpeechToText, six_minute_wav: Path
) -> None:
    fake.polls_to_complete = 4
    result = await stt.transcribe(six_minute_wav, language="ta")

    assert fake.limit_violations == 0
    assert fake.requests_to("/") == []  # stt_file would refuse 360 s
    (upload,) = fake.requests_to("/upload")
    assert upload.file_field == "file"
    assert upload.audio_duration_s == pytest.approx(360.0)
    assert upload.file_sha256 == hashlib.sha256(six_minute_wav.read_bytes()).hexdigest()
    assert (upload.app_name, upload.headers["src_lang"], upload.headers["domain"]) == (
        "stt_batch",
        "ta",
        "generic",
    )
    (job_id,) = fake.jobs
    polls = fake.requests_to("/status")
    assert len(polls) == 4
    assert all(p.query == {"job_id": job_id} and p.app_name == "stt_batch" for p in polls)
    assert [r.query for r in fake.requests_to("/transcript")] == [{"job_id": job_id}]

    assert result.duration_s == pytest.approx(360.0)
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(s.start < s.end <= 360.0 for s in result.segments)
    # Every word, in order, with the transcript's casing and punctuation.
    spoken = " ".join(CANNED_CONSULTATION).split()
    assert " ".join(s.text for s in result.segments).split() == spoken
    # Segments end at sentence ends, and one turn holds two sentences.
    assert len(result.segments) > len(CANNED_CONSULTATION)
    assert all(s.text.endswith((".", "?", "!")) for s in result.segments)


async def test_words_are_grouped_at_pauses_and_every_25_words(
    fake: FakeReverieServer, stt: ReverieSpeechToText, six_minute_wav: Path
) -> None:
    long_turn = " ".join(f"word{i}" for i in range(60))  # no punctuation at all
    fake.transcribe = lambda audio, duration: [(0.0, 60.0, long_turn), (61.0, 63.0, "yes doctor")]
    result = await stt.transcribe(six_minute_wav, language="en")
    assert [len(s.text.split()) for s in result.segments] == [25, 25, 10, 2]
    assert result.segments[0].text.startswith("word0 word1")
    assert result.segments[-1] == Segment(start=61.0, end=63.0, text="yes doctor")


async def test_transcript_without_words_is_kept_as_one_segment(
    fake: FakeReverieServer, stt: ReverieSpeechToText, six_minute_wav: Path
) -> None:
    result = {"transcript": SPOKEN, "original_transcript": SPOKEN.upper(), "words": []}
    body = job_answer("any", "000", "Transcript ready.", result=result)
    fake.faults.append(FakeFault(200, body, path="/transcript"))
    transcription = await stt.transcribe(six_minute_wav, language="en")
    assert transcription.segments == [Segment(start=0.0, end=360.0, text=SPOKEN)]


async def test_a_ready_transcript_without_a_result_is_a_bad_response(
    fake: FakeReverieServer, stt: ReverieSpeechToText, six_minute_wav: Path
) -> None:
    body = job_answer("any", "000", "Transcript ready.")
    fake.faults.append(FakeFault(200, body, path="/transcript"))
    with pytest.raises(ProviderPermanentError) as raised:
        await stt.transcribe(six_minute_wav, language="en")
    assert raised.value.code == "provider_bad_response"


async def test_a_503_while_polling_is_retried(
    fake: FakeReverieServer, stt: ReverieSpeechToText, six_minute_wav: Path
) -> None:
    fake.faults.append(FakeFault.unavailable(path="/status"))
    result = await stt.transcribe(six_minute_wav, language="en")
    assert result.segments
    assert [r.status for r in fake.requests_to("/status")] == [503, 200, 200, 200]
    assert len(fake.requests_to("/upload")) == 1  # a poll retry never re-uploads


async def test_failed_batch_job_is_permanent(
    fake: FakeReverieServer, stt: ReverieSpeechToText, six_minute_wav: Path
) -> None:
    fake.job_outcome = "failed"
    with pytest.raises(ProviderPermanentError) as raised:
        await stt.transcribe(six_minute_wav, language="en")
    assert raised.value.code == "provider_job_failed"
    assert len(fake.requests_to("/status")) == fake.polls_to_complete
    assert fake.requests_to("/transcript") == []


async def test_unknown_job_id_is_permanent(
    fake: FakeReverieServer, stt: ReverieSpeechToText, six_minute_wav: Path
) -> None:
    fake.faults.append(FakeFault(200, job_answer("gone", "001", "Invalid JOB ID"), path="/status"))
    with pytest.raises(ProviderPermanentError) as raised:
        await stt.transcribe(six_minute_wav, language="en")
    assert raised.value.code == "provider_job_not_found"
    assert len(fake.requests_to("/status")) == 1


async def test_job_that_never_finishes_times_out_as_transient(
    fake: FakeReverieServer, six_minute_wav: Path
) -> None:
    fake.polls_to_complete = 1_000_000
    adapter = ReverieSpeechToText(
        settings(fake.base_url), FAST_RETRY, poll_interval_s=0.01, max_poll_s=0.2
    )
    try:
        with pytest.raises(ProviderTransientError) as raised:
            await adapter.transcribe(six_minute_wav, language="en")
    finally:
        await adapter.aclose()
    assert raised.value.code == "provider_job_timeout"
    assert 2 <= len(fake.requests_to("/status")) <= 25  # polled, at the interval, then gave up
    assert len(fake.requests_to("/upload")) == 1


async def test_upload_refused_for_an_unavailable_domain_is_permanent(
    fake: FakeReverieServer, six_minute_wav: Path
) -> None:
    adapter = ReverieSpeechToText(settings(fake.base_url, domain="cardiology"), FAST_RETRY, **POLL)
    try:
        with pytest.raises(ProviderPermanentError) as raised:
            await adapter.transcribe(six_minute_wav, language="en")
    finally:
        await adapter.aclose()
    assert (raised.value.code, raised.value.http_status) == ("provider_rejected", 400)
    assert "003" in raised.value.message
    assert len(fake.requests) == 1


# -- errors ----------------------------------------------------------------------------------


async def test_wrong_key_fails_at_once_as_auth_failed(fake: FakeReverieServer) -> None:
    adapter = ReverieSpeechToText(
        settings(fake.base_url, api_key=SecretStr("rev-wrong")), FAST_RETRY, **POLL
    )
    try:
        with pytest.raises(ProviderPermanentError) as raised:
            await adapter.transcribe(SHORT_WAV, language="en")
    finally:
        await adapter.aclose()
    assert (raised.value.code, raised.value.http_status) == ("provider_auth_failed", 403)
    assert "CLINSCRIBE_REVERIE__API_KEY" in raised.value.message
    assert "rev-wrong" not in raised.value.message
    assert_no_vendor_text_in(raised.value, "Invalid REV-API-KEY")
    assert [r.status for r in fake.requests] == [403]


async def test_usage_exhausted_is_reported_as_quota(
    fake: FakeReverieServer, stt: ReverieSpeechToText
) -> None:
    fake.faults.append(FakeFault.usage_exhausted())
    with pytest.raises(ProviderPermanentError) as raised:
        await stt.transcribe(SHORT_WAV, language="en")
    assert raised.value.code == "provider_quota_exhausted"
    assert len(fake.requests) == 1


async def test_language_the_account_may_not_use_is_named(
    fake: FakeReverieServer, stt: ReverieSpeechToText
) -> None:
    fake.faults.append(FakeFault.rejected("unauthorized to use this src/tgt language", 403))
    with pytest.raises(ProviderPermanentError) as raised:
        await stt.transcribe(SHORT_WAV, language="en")
    assert raised.value.code == "provider_language_not_allowed"


@pytest.mark.parametrize("status", [200, 400])
async def test_success_false_is_permanent_and_does_not_echo_the_cause(
    fake: FakeReverieServer, stt: ReverieSpeechToText, status: int
) -> None:
    fake.faults.append(FakeFault.rejected(f"could not decode: {SPOKEN}", status))
    with pytest.raises(ProviderPermanentError) as raised:
        await stt.transcribe(SHORT_WAV, language="en")
    assert raised.value.code == "provider_rejected"
    assert len(fake.requests) == 1
    assert_no_vendor_text_in(raised.value, "could not decode")


async def test_503_then_success_is_retried(
    fake: FakeReverieServer, stt: ReverieSpeechToText
) -> None:
    fake.faults.append(FakeFault.unavailable())
    result = await stt.transcribe(SHORT_WAV, language="en")
    assert result.segments
    assert [r.status for r in fake.requests] == [503, 200]


async def test_persistent_503_gives_up_after_max_attempts(
    fake: FakeReverieServer, stt: ReverieSpeechToText
) -> None:
    fake.faults.extend(FakeFault.unavailable() for _ in range(5))
    with pytest.raises(ProviderTransientError) as raised:
        await stt.transcribe(SHORT_WAV, language="en")
    assert raised.value.http_status == 503
    assert len(fake.requests) == FAST_RETRY.max_attempts


async def test_connection_refused_is_transient() -> None:
    adapter = ReverieSpeechToText(settings(f"http://127.0.0.1:{closed_port()}"), FAST_RETRY)
    try:
        with pytest.raises(ProviderTransientError) as raised:
            await adapter.transcribe(SHORT_WAV, language="en")
    finally:
        await adapter.aclose()
    assert raised.value.code == "provider_network"


@pytest.mark.parametrize(
    ("overrides", "named", "not_named"),
    [
        ({"api_key": None}, "CLINSCRIBE_REVERIE__API_KEY", "CLINSCRIBE_REVERIE__APP_ID"),
        ({"app_id": None}, "CLINSCRIBE_REVERIE__APP_ID", "CLINSCRIBE_REVERIE__API_KEY"),
        ({"api_key": SecretStr("")}, "CLINSCRIBE_REVERIE__API_KEY", "CLINSCRIBE_REVERIE__APP_ID"),
    ],
)
def test_missing_credentials_name_the_setting(
    overrides: dict[str, Any], named: str, not_named: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ReverieSpeechToText(settings("http://127.0.0.1:9", **overrides), FAST_RETRY)
    assert raised.value.code == "missing_api_key"
    assert named in raised.value.message
    assert not_named not in raised.value.message
