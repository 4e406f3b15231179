"""The OpenAI-compatible speech-to-text adapter against the protocol-faithful fake on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from clinscribe.config import OpenAISttSettings, RetrySettings
from clinscribe.errors import (
    ConfigurationError,
    ProviderError,
    ProviderPermanentError,
    ProviderTransientError,
)
from clinscribe.providers.stt.base import Segment
from clinscribe.providers.stt.openai_compat import OpenAICompatibleSpeechToText
from tests.fakes.openai_compat import FakeFault, FakeOpenAIServer
from tests.support.audio import SHORT_WAV

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

API_KEY = "gsk_test_key"
# What the fake "hears": if any of it shows up in an error message, PHI would leak into logs.
SPOKEN = [(0.0, 1.6, " Have you had any fever, Mrs Okafor?"), (2.0, 4.26, "Yes, since yesterday.")]
FAST_RETRY = RetrySettings(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)


def heard(audio: bytes, duration: float | None, form: dict[str, str]) -> list[Any]:
    return list(SPOKEN)


def assert_no_transcript_in(error: Exception) -> None:
    text = str(error) + str(getattr(error, "to_json", dict)())
    for _, _, spoken in SPOKEN:
        assert spoken.strip() not in text
    assert "Okafor" not in text


def settings(base_url: str, **overrides: Any) -> OpenAISttSettings:
    values: dict[str, Any] = {"base_url": base_url, "api_key": SecretStr(API_KEY)}
    return OpenAISttSettings(**(values | overrides))


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=API_KEY) as server:
        server.transcribe = heard
        yield server


@pytest.fixture
async def stt(fake: FakeOpenAIServer) -> AsyncIterator[OpenAICompatibleSpeechToText]:
    adapter = OpenAICompatibleSpeechToText(settings(fake.base_url), FAST_RETRY)
    yield adapter
    await adapter.aclose()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_verbose_json_segments_become_our_segments(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    result = await stt.transcribe(SHORT_WAV, language="en")
    assert result.segments == [
        Segment(start=0.0, end=1.6, text="Have you had any fever, Mrs Okafor?"),
        Segment(start=2.0, end=4.26, text="Yes, since yesterday."),
    ]
    assert result.duration_s == pytest.approx(4.659, abs=0.01)  # the fake reads the WAV header
    assert (result.language, result.provider, result.model) == ("en", "openai", "whisper-large-v3")


async def test_form_carries_model_language_and_the_unchanged_file(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    await stt.transcribe(SHORT_WAV, language="ta")
    (request,) = fake.transcription_requests()
    assert request.status == 200
    assert request.form["model"] == "whisper-large-v3"
    assert request.form["language"] == "ta"
    assert request.form["response_format"] == "verbose_json"
    assert request.form["timestamp_granularities[]"] == "segment"
    assert request.file_sha256 == hashlib.sha256(SHORT_WAV.read_bytes()).hexdigest()
    assert request.headers["authorization"] == "<redacted>"  # a key was sent (and accepted)


async def test_empty_segments_are_dropped(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    fake.transcribe = lambda audio, duration, form: [(0.0, 1.0, "  "), (1.0, 2.0, "Cough.")]
    result = await stt.transcribe(SHORT_WAV, language="en")
    assert [s.text for s in result.segments] == ["Cough."]


async def test_503_twice_then_success(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    fake.faults.extend([FakeFault.unavailable(), FakeFault.unavailable()])
    result = await stt.transcribe(SHORT_WAV, language="en")
    assert len(result.segments) == 2
    assert [r.status for r in fake.transcription_requests()] == [503, 503, 200]


async def test_429_waits_at_least_retry_after(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    fake.faults.append(FakeFault.rate_limited(1))
    await stt.transcribe(SHORT_WAV, language="en")
    first, second = fake.transcription_requests()
    assert (first.status, second.status) == (429, 200)
    # Backoff is capped at 0.05 s here: only the retry-after header explains this gap.
    assert second.received_at - first.received_at >= 1.0


async def test_persistent_503_gives_up_after_max_attempts(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    fake.faults.extend(FakeFault.unavailable() for _ in range(10))
    with pytest.raises(ProviderTransientError) as raised:
        await stt.transcribe(SHORT_WAV, language="en")
    assert raised.value.http_status == 503
    assert len(fake.transcription_requests()) == FAST_RETRY.max_attempts
    assert_no_transcript_in(raised.value)


async def test_wrong_key_fails_at_once(fake: FakeOpenAIServer) -> None:
    adapter = OpenAICompatibleSpeechToText(
        settings(fake.base_url, api_key=SecretStr("gsk_wrong")), FAST_RETRY
    )
    try:
        with pytest.raises(ProviderPermanentError) as raised:
            await adapter.transcribe(SHORT_WAV, language="en")
    finally:
        await adapter.aclose()
    assert raised.value.code == "provider_auth_failed"
    assert "API key" in raised.value.message
    assert "gsk_wrong" not in raised.value.message
    assert len(fake.transcription_requests()) == 1
    assert_no_transcript_in(raised.value)


async def test_413_from_the_server_is_permanent(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    fake.faults.append(FakeFault.too_large())
    with pytest.raises(ProviderPermanentError) as raised:
        await stt.transcribe(SHORT_WAV, language="en")
    assert raised.value.code == "provider_request_too_large"
    assert len(fake.transcription_requests()) == 1


async def test_unknown_model_is_permanent_and_names_no_vendor_text(fake: FakeOpenAIServer) -> None:
    adapter = OpenAICompatibleSpeechToText(
        settings(fake.base_url, model="whisper-huge-v9"), FAST_RETRY
    )
    try:
        with pytest.raises(ProviderPermanentError) as raised:
            await adapter.transcribe(SHORT_WAV, language="en")
    finally:
        await adapter.aclose()
    assert (raised.value.code, raised.value.http_status) == ("provider_rejected", 404)
    assert "model_not_found" in raised.value.message
    assert "does not exist" not in raised.value.message  # the vendor's sentence stays out
    assert len(fake.transcription_requests()) == 1


async def test_vendor_error_echoing_the_transcript_does_not_leak(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    echoed = {"error": {"message": SPOKEN[0][2], "type": "invalid_request_error", "code": None}}
    fake.faults.append(FakeFault(400, echoed))
    with pytest.raises(ProviderPermanentError) as raised:
        await stt.transcribe(SHORT_WAV, language="en")
    assert_no_transcript_in(raised.value)


async def test_a_200_that_is_not_json_is_a_provider_error(
    fake: FakeOpenAIServer, stt: OpenAICompatibleSpeechToText
) -> None:
    fake.faults.append(FakeFault(200, None, {"content-type": "text/html"}))
    with pytest.raises(ProviderError):
        await stt.transcribe(SHORT_WAV, language="en")


async def test_file_over_the_limit_is_refused_without_a_request(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    adapter = OpenAICompatibleSpeechToText(settings(fake.base_url, max_file_mb=0.1), FAST_RETRY)
    try:
        assert SHORT_WAV.stat().st_size > 0.1 * 1024 * 1024
        with pytest.raises(ProviderPermanentError) as raised:
            await adapter.transcribe(SHORT_WAV, language="en")
    finally:
        await adapter.aclose()
    assert raised.value.code == "audio_too_large_for_provider"
    assert "CLINSCRIBE_OPENAI_STT__MAX_FILE_MB" in raised.value.message
    assert fake.requests == []


async def test_connection_refused_is_transient_after_max_attempts() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/openai/v1"
    adapter = OpenAICompatibleSpeechToText(settings(base_url), FAST_RETRY)
    try:
        with capture_logs() as logs, pytest.raises(ProviderTransientError) as raised:
            await adapter.transcribe(SHORT_WAV, language="en")
    finally:
        await adapter.aclose()
    assert raised.value.code == "provider_network"
    retries = [e for e in logs if e["event"] == "provider call will be retried"]
    assert len(retries) == FAST_RETRY.max_attempts - 1


async def test_timeout_is_transient_and_retried(fake: FakeOpenAIServer) -> None:
    fake.latency_s = 0.6
    retry = RetrySettings(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05)
    adapter = OpenAICompatibleSpeechToText(settings(fake.base_url, timeout_s=0.2), retry)
    try:
        with pytest.raises(ProviderTransientError) as raised:
            await adapter.transcribe(SHORT_WAV, language="en")
    finally:
        await adapter.aclose()
    assert raised.value.code == "provider_timeout"
    assert len(fake.transcription_requests()) == 2


def test_missing_api_key_names_the_setting() -> None:
    with pytest.raises(ConfigurationError) as raised:
        OpenAICompatibleSpeechToText(OpenAISttSettings(base_url="http://127.0.0.1:9"), FAST_RETRY)
    assert raised.value.code == "missing_api_key"
    assert "CLINSCRIBE_OPENAI_STT__API_KEY" in raised.value.message
