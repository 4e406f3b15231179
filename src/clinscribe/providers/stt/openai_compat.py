"""Speech-to-text through any OpenAI-compatible `/audio/transcriptions` endpoint.

Groq (default base URL), OpenAI and self-hosted servers (e.g. faster-whisper-server, vLLM)
share this wire format. We ask for `verbose_json` to get segment timestamps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import httpx

from clinscribe.config import OpenAISttSettings, RetrySettings
from clinscribe.errors import ConfigurationError, ProviderPermanentError
from clinscribe.providers.http import error_for_exception, error_for_response, with_retries
from clinscribe.providers.stt.base import Segment, SttCapabilities, TranscriptionResult

_MIB = 1024 * 1024


class _VerboseSegment(TypedDict, total=False):
    id: int
    start: float
    end: float
    text: str


class _VerboseTranscription(TypedDict, total=False):
    language: str
    duration: float
    text: str
    segments: list[_VerboseSegment]


def openai_capabilities(settings: OpenAISttSettings) -> SttCapabilities:
    return SttCapabilities(
        languages=None,
        max_seconds_per_request=None,
        max_bytes_per_request=int(settings.max_file_mb * _MIB),
        diarization=False,
        needs_key=True,
    )


class OpenAICompatibleSpeechToText:
    name = "openai"

    def __init__(self, settings: OpenAISttSettings, retry: RetrySettings) -> None:
        if settings.api_key is None:
            raise ConfigurationError(
                "The OpenAI-compatible speech-to-text provider needs an API key: set "
                "CLINSCRIBE_OPENAI_STT__API_KEY (or choose CLINSCRIBE_STT_PROVIDER=local).",
                code="missing_api_key",
            )
        self.model = settings.model
        self._retry = retry
        self.capabilities = openai_capabilities(settings)
        self._max_bytes = int(settings.max_file_mb * _MIB)
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
            timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
        )

    async def transcribe(self, audio: Path, *, language: str) -> TranscriptionResult:
        size = audio.stat().st_size  # noqa: ASYNC240  (a metadata read, no I/O wait)
        if size > self._max_bytes:
            raise ProviderPermanentError(
                f"The recording ({size / _MIB:.1f} MB as 16 kHz WAV) exceeds the "
                f"{self._max_bytes / _MIB:.1f} MB per-file limit of the transcription endpoint. "
                "Raise CLINSCRIBE_OPENAI_STT__MAX_FILE_MB if your plan allows it, or use the "
                "local provider.",
                provider=self.name,
                code="audio_too_large_for_provider",
            )
        body = await with_retries(
            lambda: self._post(audio, language), policy=self._retry, provider=self.name
        )
        return self._to_result(body, language)

    async def _post(self, audio: Path, language: str) -> _VerboseTranscription:
        data = {
            "model": self.model,
            "language": language,
            "response_format": "verbose_json",
            "temperature": "0",
            "timestamp_granularities[]": "segment",
        }
        try:
            with audio.open("rb") as handle:
                response = await self._client.post(
                    "audio/transcriptions",
                    data=data,
                    files={"file": (audio.name, handle, "audio/wav")},
                )
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        if response.status_code >= 400:
            raise error_for_response(self.name, response)
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise ProviderPermanentError(
                "The transcription endpoint answered with an unexpected body.",
                provider=self.name,
                code="provider_bad_response",
            )
        return payload  # type: ignore[return-value]

    def _to_result(self, body: _VerboseTranscription, language: str) -> TranscriptionResult:
        segments = [
            Segment(start=float(s.get("start", 0.0)), end=float(s.get("end", 0.0)), text=text)
            for s in body.get("segments") or []
            if (text := str(s.get("text", "")).strip())
        ]
        if not segments and (text := str(body.get("text", "")).strip()):
            # Servers that ignore verbose_json still give the text; keep it as one utterance.
            segments = [Segment(start=0.0, end=float(body.get("duration", 0.0)), text=text)]
        return TranscriptionResult(
            language=language,
            duration_s=float(body.get("duration", segments[-1].end if segments else 0.0)),
            segments=segments,
            provider=self.name,
            model=self.model,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
