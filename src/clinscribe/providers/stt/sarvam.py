"""Speech-to-text through Sarvam AI (Indian languages): REST for short clips, batch jobs for long.

    <= 30 s  POST /speech-to-text                       one request, chunk-level timestamps
    longer   POST /speech-to-text/job/v1                create a job (diarization lives here only)
             POST .../upload-files, PUT signed URL      Azure blob, x-ms-blob-type: BlockBlob
             POST .../{id}/start, GET .../{id}/status   until Completed or Failed
             POST .../download-files, GET signed URL    per-file JSON with diarized_transcript

Shapes follow design/providers.md and the sarvamai SDK 0.1.39 (its speech_to_text_job/job.py
is the reference for the upload/download dance). Errors are classified by ``providers.http``.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict, TypeVar, cast
from urllib.parse import quote

import httpx

from clinscribe.config import RetrySettings, SarvamSettings
from clinscribe.errors import (
    ConfigurationError,
    InvalidAudio,
    ProviderPermanentError,
    ProviderTransientError,
    UnsupportedLanguage,
)
from clinscribe.providers.http import error_for_exception, error_for_response, with_retries
from clinscribe.providers.stt.base import Segment, SttCapabilities, TranscriptionResult

T = TypeVar("T")

# Our ISO 639-1 code -> Sarvam's language_code. Sarvam spells Odia `od-IN`, not BCP-47 `or-IN`
# (SDK SpeechToTextLanguage); the others are BCP-47 with the India region.
SARVAM_LANGUAGES = {
    "en": "en-IN", "hi": "hi-IN", "ta": "ta-IN", "te": "te-IN", "kn": "kn-IN", "ml": "ml-IN",
    "mr": "mr-IN", "bn": "bn-IN", "gu": "gu-IN", "pa": "pa-IN", "or": "od-IN",
}  # fmt: skip
REST_MAX_SECONDS = 30.0
BATCH_MAX_SECONDS = 3600.0
_JOBS = "speech-to-text/job/v1"
# The name the vendor sees: local file names may carry consultation ids, the vendor needs none.
_UPLOAD_NAME = "consultation.wav"
# REST timestamps come as phrase chunks (SDK docs: "not individual words"); we join them into
# utterances at a pause, a sentence end (the Devanagari danda too) or about 25 words.
_PAUSE_S = 0.8
_MAX_WORDS = 25
_SENTENCE_END = (".", "?", "!", "।", "॥")
_UPLOAD_PIECE = 1024 * 1024


class _Timestamps(TypedDict, total=False):
    words: list[str]
    start_time_seconds: list[float]
    end_time_seconds: list[float]


class _DiarizedEntry(TypedDict, total=False):
    transcript: str
    start_time_seconds: float
    end_time_seconds: float
    speaker_id: str


class _Transcription(TypedDict, total=False):
    # The REST response; the batch per-file output adds diarized_transcript.
    transcript: str
    timestamps: _Timestamps | None
    diarized_transcript: dict[str, list[_DiarizedEntry]] | None  # {"entries": [...]}


class _TaskDetail(TypedDict, total=False):
    inputs: list[dict[str, str]]  # [{file_name, file_id}]
    outputs: list[dict[str, str]]
    state: str  # Success | API Error | Internal Server Error


class _JobStatus(TypedDict, total=False):
    job_state: str  # Accepted | Pending | Running | Completed | Failed
    job_details: list[_TaskDetail]


class SarvamSpeechToText:
    name = "sarvam"
    # A class attribute, so the registry can read it without opening connections.
    capabilities = SttCapabilities(
        languages=frozenset(SARVAM_LANGUAGES),
        # Longer than REST_MAX_SECONDS goes to one batch job with diarization (speaker ids
        # only agree within one job, so the pipeline must not cut the recording); the batch
        # API takes files of 1-2 hours (docs disagree (?)): pieces of at most an hour.
        max_seconds_per_request=BATCH_MAX_SECONDS,
        max_bytes_per_request=None,
        diarization=True,  # batch jobs only: the REST endpoint has no diarization
        needs_key=True,
    )

    def __init__(
        self,
        settings: SarvamSettings,
        retry: RetrySettings,
        *,
        poll_interval_s: float = 2.0,
        max_poll_s: float = 3600.0,
        diarization: bool = True,
        num_speakers: int = 2,
        timeout_s: float = 120.0,
    ) -> None:
        if settings.api_key is None:
            raise ConfigurationError(
                "The Sarvam speech-to-text provider needs an API key: set "
                "CLINSCRIBE_SARVAM__API_KEY (or choose CLINSCRIBE_STT_PROVIDER=local).",
                code="missing_api_key",
            )
        self.model = settings.model
        self._mode = settings.mode
        self._retry = retry
        self._poll_interval_s, self._max_poll_s = poll_interval_s, max_poll_s
        self._diarization, self._num_speakers = diarization, num_speakers
        timeout = httpx.Timeout(timeout_s, connect=10.0)
        self._api = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            headers={"api-subscription-key": settings.api_key.get_secret_value()},
            timeout=timeout,
        )
        # Signed storage URLs carry their own authorisation: our key must never go there.
        self._storage = httpx.AsyncClient(timeout=timeout)

    async def transcribe(self, audio: Path, *, language: str) -> TranscriptionResult:
        if (language_code := SARVAM_LANGUAGES.get(language.strip().lower())) is None:
            supported = ", ".join(sorted(SARVAM_LANGUAGES))
            raise UnsupportedLanguage(
                f"Sarvam does not transcribe '{language[:16]}': use {supported}."
            )
        duration = _wav_duration(audio)
        if duration <= REST_MAX_SECONDS:
            body = await self._retrying(lambda: self._rest(audio, language_code))
        else:
            body = await self._batch(audio, language_code)
        return TranscriptionResult(
            language=language,
            duration_s=duration,
            segments=_segments(body, duration),
            provider=self.name,
            model=self.model,
        )

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._storage.aclose()

    async def _rest(self, audio: Path, language_code: str) -> _Transcription:
        data = {"model": self.model, "language_code": language_code, "with_timestamps": "true"}
        if self._takes_mode:
            data["mode"] = self._mode
        with audio.open("rb") as handle:
            files = {"file": (_UPLOAD_NAME, handle, "audio/wav")}
            response = await self._call(self._api, "POST", "speech-to-text", data=data, files=files)
        return cast(_Transcription, self._object(response))

    async def _batch(self, audio: Path, language_code: str) -> _Transcription:
        """One job for one file; each step retried on its own so a blip does not redo the job."""
        job_id = await self._retrying(lambda: self._create_job(language_code))
        job_path = f"{_JOBS}/{quote(job_id, safe='')}"
        # A retried upload asks for a fresh signed URL, so an expired one heals itself.
        await self._retrying(lambda: self._upload(job_id, audio))
        await self._retrying(lambda: self._api_json("POST", f"{job_path}/start"))
        output = self._output_name(await self._wait(job_path))
        return await self._retrying(lambda: self._download(job_id, output))

    async def _create_job(self, language_code: str) -> str:
        parameters: dict[str, Any] = {"model": self.model, "language_code": language_code}
        parameters |= {"with_timestamps": True, "with_diarization": self._diarization}
        if self._takes_mode:
            parameters["mode"] = self._mode
        if self._diarization:
            parameters["num_speakers"] = self._num_speakers
        body = await self._api_json("POST", _JOBS, json={"job_parameters": parameters})
        job_id = body.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise _unexpected_body()
        return job_id

    async def _upload(self, job_id: str, audio: Path) -> None:
        files = {"job_id": job_id, "files": [_UPLOAD_NAME]}
        links = await self._api_json("POST", f"{_JOBS}/upload-files", json=files)
        url = self._signed_url(links, "upload_urls", _UPLOAD_NAME)
        size = audio.stat().st_size  # noqa: ASYNC240  (a metadata read, no I/O wait)
        # Azure's Put Blob wants a Content-Length (no chunked encoding); stream, don't buffer.
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": "audio/wav"}
        headers |= {"Content-Length": str(size)}
        await self._call(self._storage, "PUT", url, content=_pieces(audio), headers=headers)

    async def _wait(self, job_path: str) -> _JobStatus:
        deadline = time.monotonic() + self._max_poll_s
        while True:
            body = await self._retrying(lambda: self._api_json("GET", f"{job_path}/status"))
            state = str(body.get("job_state", "")).lower()
            # "PartiallyCompleted" appears in the SDK docs (not in its JobState type): the
            # file's own state then tells whether our one file made it.
            if state in {"completed", "partiallycompleted"}:
                return cast(_JobStatus, body)
            if state == "failed":
                raise _job_failed()
            if time.monotonic() >= deadline:
                raise ProviderTransientError(
                    f"The {self.name} transcription job did not finish within "
                    f"{self._max_poll_s:g} s. It will be retried automatically.",
                    provider=self.name,
                    code="provider_job_timeout",
                )
            await asyncio.sleep(self._poll_interval_s)

    def _output_name(self, status: _JobStatus) -> str:
        # The service names outputs itself (SDK docs: e.g. "0.json"); like the SDK's
        # download_outputs, we find ours in job_details rather than guess it (?).
        for detail in status.get("job_details") or []:
            if _UPLOAD_NAME not in [ref.get("file_name") for ref in detail.get("inputs") or []]:
                continue
            outputs = [ref.get("file_name") for ref in detail.get("outputs") or []]
            if detail.get("state") != "Success" or not outputs or not outputs[0]:
                raise _job_failed()
            return str(outputs[0])
        raise _unexpected_body()

    async def _download(self, job_id: str, output: str) -> _Transcription:
        files = {"job_id": job_id, "files": [output]}
        links = await self._api_json("POST", f"{_JOBS}/download-files", json=files)
        url = self._signed_url(links, "download_urls", output)
        return cast(_Transcription, self._object(await self._call(self._storage, "GET", url)))

    @property
    def _takes_mode(self) -> bool:
        # `mode` applies to saaras:v3/v4 only (SDK docs); legacy saarika may reject it (?).
        return self.model.startswith("saaras")

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(call, policy=self._retry, provider=self.name)

    async def _api_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._object(await self._call(self._api, method, path, **kwargs))

    async def _call(
        self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        status = response.status_code
        if client is self._storage and 400 <= status < 500 and status != 429:
            # Azure answers 403 for a bad or expired signature: no problem with our key.
            message = f"Sarvam's file storage refused a transfer (HTTP {status}); retry later."
            code = "provider_storage_rejected"
            raise ProviderPermanentError(message, provider=self.name, code=code, http_status=status)
        if status >= 400:
            raise error_for_response(self.name, response)
        return response

    def _object(self, response: httpx.Response) -> dict[str, Any]:
        try:
            payload: Any = response.json()
        except ValueError:
            raise _unexpected_body() from None
        if not isinstance(payload, dict):
            raise _unexpected_body()
        return payload

    def _signed_url(self, links: dict[str, Any], key: str, name: str) -> str:
        entry = (links.get(key) or {}).get(name)
        url = entry.get("file_url") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _unexpected_body()
        return url


def _unexpected_body() -> ProviderPermanentError:
    message = "The sarvam service answered with an unexpected body."
    return ProviderPermanentError(message, provider="sarvam", code="provider_bad_response")


def _job_failed() -> ProviderPermanentError:
    message = (
        "The sarvam transcription job failed. Check that the recording holds speech in the "
        "chosen language, then retry the consultation."
    )
    return ProviderPermanentError(message, provider="sarvam", code="provider_job_failed")


async def _pieces(path: Path) -> AsyncIterator[bytes]:
    """The file in 1 MiB pieces, read off the event loop."""
    with path.open("rb") as handle:
        while piece := await asyncio.to_thread(handle.read, _UPLOAD_PIECE):
            yield piece


def _wav_duration(audio: Path) -> float:
    try:
        with wave.open(str(audio), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (OSError, wave.Error, EOFError, ZeroDivisionError) as exc:
        raise InvalidAudio("The recording is not a readable WAV file.") from exc


def _segments(body: _Transcription, duration: float) -> list[Segment]:
    """Diarized entries when present, else grouped timestamp chunks, else the bare transcript."""
    if entries := (body.get("diarized_transcript") or {}).get("entries") or []:
        diarized = [
            Segment(
                start=float(entry.get("start_time_seconds", 0.0)),
                end=float(entry.get("end_time_seconds", 0.0)),
                text=text,
                speaker_id=None if entry.get("speaker_id") is None else str(entry["speaker_id"]),
            )
            for entry in entries
            if (text := str(entry.get("transcript") or "").strip())
        ]
        return sorted(diarized, key=lambda s: (s.start, s.end))
    segments = _grouped_chunks(body.get("timestamps") or {})
    if not segments and (text := str(body.get("transcript") or "").strip()):
        segments = [Segment(start=0.0, end=duration, text=text)]
    return segments


def _grouped_chunks(timestamps: _Timestamps) -> list[Segment]:
    texts, starts = timestamps.get("words") or [], timestamps.get("start_time_seconds") or []
    chunks = zip(texts, starts, timestamps.get("end_time_seconds") or [], strict=False)
    groups: list[list[tuple[str, float, float]]] = []
    current: list[tuple[str, float, float]] = []
    for raw, start, end in chunks:
        if not (text := str(raw).strip()):
            continue
        if current and float(start) - current[-1][2] >= _PAUSE_S:
            groups.append(current)
            current = []
        current.append((text, float(start), float(end)))
        words = sum(len(t.split()) for t, _, _ in current)
        if text.endswith(_SENTENCE_END) or words >= _MAX_WORDS:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return [
        Segment(start=group[0][1], end=group[-1][2], text=" ".join(t for t, _, _ in group))
        for group in groups
    ]
