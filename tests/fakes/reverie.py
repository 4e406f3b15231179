"""A protocol-faithful fake of Reverie's speech-to-text APIs, served on 127.0.0.1 for tests.

Shapes follow design/providers.md (Reverie) and Reverie's public docs: credentials and options
travel as headers (`REV-API-KEY`, `REV-APP-ID`, `REV-APPNAME`, `src_lang`, `domain`, `format`).
`stt_file` is POST / with multipart `audio_file` (<= 300 s) and answers
`{id, success, final, text, display_text, confidence, cause}`; `stt_batch` is POST /upload
(multipart `file`) -> GET /status?job_id= -> GET /transcript?job_id=, answering
`{job_id, code, message[, status | result]}`. Where the docs are silent (?) the choice is marked.

A request is recorded, its credentials checked (403), a fault popped, ``latency_s`` slept, then the
fault (if any) or validation and success answered; a success (`stt_file` answer or batch transcript)
first sleeps ``latency_per_audio_minute_s`` per minute of its audio. Tests steer it through
attributes.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._loopback import LoopbackServer
from tests.fakes.openai_compat import CANNED_CONSULTATION, wav_duration

Segments = list[tuple[float, float, str]]  # (start s, end s, text)
TranscribeFn = Callable[[bytes, float], Segments]

FILE_LIMIT_S = 300.0
LANGUAGES = frozenset(
    ["en", "hi", "ta", "te", "kn", "ml", "mr", "bn", "gu", "pa", "or", "as", "hi_en"]
)
DOMAINS = frozenset({"generic", "bfsi", "voice_search", "app_search"})
_PUNCTUATION = '.,?!;:"()'


@dataclass
class FakeFault:
    """A canned answer given instead of the real work, to the next request on ``path`` (any
    path when None)."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def unavailable(cls, path: str | None = None) -> FakeFault:
        return cls(503, None, path=path)  # Reverie's 5xx bodies are undocumented (?)

    @classmethod
    def usage_exhausted(cls) -> FakeFault:
        return cls(403, failure("usage exhausted"))

    @classmethod
    def rejected(cls, cause: str, status: int = 200) -> FakeFault:
        """`success: false` with a reason; the HTTP status that goes with it is undocumented (?)."""
        return cls(status, failure(cause))


@dataclass
class RecordedRequest:
    """What the fake saw of one request; never the REV-API-KEY value."""

    path: str
    method: str
    received_at: float
    headers: dict[str, str]
    query: dict[str, str]
    status: int | None = None
    finished_at: float | None = None
    file_field: str | None = None
    file_bytes: int | None = None
    file_sha256: str | None = None
    audio_duration_s: float | None = None

    @property
    def app_name(self) -> str | None:
        return self.headers.get("rev-appname")


@dataclass
class FakeJob:
    job_id: str
    duration_s: float
    segments: Segments
    outcome: str  # completed | failed, reached after polls_to_complete status calls
    polls: int = 0


def failure(cause: str) -> dict[str, Any]:
    """Reverie's documented `stt_file` failure shape."""
    body = {"id": str(uuid.uuid4()), "success": False, "final": True, "text": ""}
    return body | {"display_text": "", "confidence": 0, "cause": cause}


def job_answer(job_id: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "code": code, "message": message, **extra}


def canned_dialogue(audio: bytes, duration: float) -> Segments:
    """Default ``transcribe``: the canned consultation, each turn in 80 % of an equal slot."""
    slot = duration / len(CANNED_CONSULTATION)
    return [
        (round(i * slot, 2), round((i + 0.8) * slot, 2), text)
        for i, text in enumerate(CANNED_CONSULTATION)
    ]


def raw_words(text: str) -> list[str]:
    """Words as Reverie's word timings give them: upper case, no punctuation."""
    return [w for token in text.split() if (w := token.strip(_PUNCTUATION).upper())]


def word_timings(segments: Segments) -> list[dict[str, Any]]:
    """Word timestamps evenly spaced inside each segment."""
    words: list[dict[str, Any]] = []
    for start, end, text in segments:
        tokens = raw_words(text)
        step = (end - start) / max(len(tokens), 1)
        for i, word in enumerate(tokens):
            begin, finish = round(start + i * step, 3), round(start + (i + 1) * step, 3)
            words.append({"conf": 0.97, "start": begin, "end": finish, "word": word})
    return words


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02}:{minutes:02}:{rest // 1000:02},{rest % 1000:03}"


class FakeReverieServer(LoopbackServer):
    """Reverie STT (`stt_file` and `stt_batch`) running uvicorn in a background thread."""

    label = "fake Reverie server"

    def __init__(
        self,
        *,
        api_key: str = "rev-test-key",
        app_id: str = "rev-test-app",
        latency_s: float = 0.0,
        latency_per_audio_minute_s: float = 0.0,
        polls_to_complete: int = 3,
    ) -> None:
        self.api_key, self.app_id = api_key, app_id
        self.latency_s = latency_s
        self.latency_per_audio_minute_s = latency_per_audio_minute_s  # recognition time
        self.polls_to_complete = polls_to_complete  # status calls until a job is done
        self.job_outcome = "completed"  # set "failed" to fail the next jobs
        self.transcribe: TranscribeFn | None = None
        self.faults: deque[FakeFault] = deque()
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, FakeJob] = {}
        self.limit_violations = 0  # stt_file requests over 300 s; the adapter must never send one
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/", self._stt_file, methods=["POST"]),
                Route("/upload", self._upload, methods=["POST"]),
                Route("/status", self._status, methods=["GET"]),
                Route("/transcript", self._transcript, methods=["GET"]),
            ]
        )

    @property
    def base_url(self) -> str:
        return self.root_url

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- plumbing shared by every route ------------------------------------------------------

    async def _record(
        self, request: Request, file_field: str | None
    ) -> tuple[RecordedRequest, bytes | None]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "rev-api-key" in headers:
            headers["rev-api-key"] = "<redacted>"
        query = dict(request.query_params)
        rec = RecordedRequest(request.url.path, request.method, time.monotonic(), headers, query)
        with self._lock:
            self.requests.append(rec)
        audio: bytes | None = None
        if file_field is not None:
            async with request.form() as form:
                upload = form.get(file_field)
                if isinstance(upload, UploadFile):
                    audio = await upload.read()
                    rec.file_field, rec.file_bytes = file_field, len(audio)
                    rec.file_sha256 = sha256(audio).hexdigest()
                    rec.audio_duration_s = wav_duration(audio)
        return rec, audio

    def _finish(
        self, rec: RecordedRequest, body: dict[str, Any] | None, status: int = 200
    ) -> Response:
        response = JSONResponse(body, status) if body is not None else Response(status_code=status)
        rec.status, rec.finished_at = status, time.monotonic()
        return response

    async def _gate(self, request: Request, rec: RecordedRequest, app_name: str) -> Response | None:
        """Credentials (403, documented shape), the app name, fault injection, latency."""
        given = (request.headers.get("rev-api-key"), request.headers.get("rev-app-id"))
        if given != (self.api_key, self.app_id):
            return self._finish(rec, failure("Invalid REV-API-KEY or REV-APP-ID"), 403)
        if request.headers.get("rev-appname") != app_name:
            return self._finish(rec, failure("unauthorized to use this API"), 403)
        fault = self._pop_fault(rec.path)
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        if fault is None:
            return None
        response = self._finish(rec, fault.body, fault.status)
        response.headers.update(fault.headers)
        return response

    def _pop_fault(self, path: str) -> FakeFault | None:
        # Only the server's event loop pops, so find-then-remove cannot race.
        fault = next((f for f in self.faults if f.path in (None, path)), None)
        if fault is not None:
            self.faults.remove(fault)
        return fault

    async def _recognise(self, duration: float) -> None:
        """Take as long as recognising ``duration`` seconds of audio would."""
        if self.latency_per_audio_minute_s > 0:
            await asyncio.sleep(self.latency_per_audio_minute_s * duration / 60)

    def _segments(self, audio: bytes, duration: float) -> Segments:
        return (self.transcribe or canned_dialogue)(audio, duration)

    # -- stt_file ------------------------------------------------------------------------------

    async def _stt_file(self, request: Request) -> Response:
        rec, audio = await self._record(request, "audio_file")
        if (early := await self._gate(request, rec, "stt_file")) is not None:
            return early
        lang, domain = request.headers.get("src_lang"), request.headers.get("domain")
        if not domain:
            return self._finish(rec, failure("no 'domain' given"), 400)
        if not lang:
            return self._finish(rec, failure("no 'src_lang' given"), 400)  # wording (?)
        if lang not in LANGUAGES:
            return self._finish(rec, failure("unauthorized to use this src/tgt language"), 403)
        if audio is None:
            return self._finish(rec, failure("audio_file or file_url is required"), 400)  # (?)
        duration = rec.audio_duration_s
        if request.headers.get("format", "16k_int16") != "16k_int16" or duration is None:
            return self._finish(rec, failure("invalid sample_rate value"), 400)
        if duration > FILE_LIMIT_S:
            with self._lock:
                self.limit_violations += 1
            cause = "audio_file length should be equal to or less than 300 seconds"  # status (?)
            return self._finish(rec, failure(cause), 400)
        await self._recognise(duration)
        display_text = " ".join(text.strip() for _, _, text in self._segments(audio, duration))
        body = {"id": str(uuid.uuid4()), "success": True, "final": True, "cause": "ready"}
        # `text` is the raw recognition, `display_text` the punctuated rendering (?).
        body |= {"text": re.sub(r"[^\w\s']", "", display_text).lower(), "confidence": 0.93}
        return self._finish(rec, body | {"display_text": display_text})

    # -- stt_batch -----------------------------------------------------------------------------

    async def _upload(self, request: Request) -> Response:
        rec, audio = await self._record(request, "file")
        if (early := await self._gate(request, rec, "stt_batch")) is not None:
            return early
        job_id = str(uuid.uuid4())
        lang, domain = request.headers.get("src_lang"), request.headers.get("domain")
        # Upload errors answer 400 here; the docs give the codes, not the HTTP status (?).
        if not lang:
            return self._finish(rec, job_answer(job_id, "001", "Language code is required"), 400)
        if lang not in LANGUAGES or domain not in DOMAINS:
            message = "Language and/or Domain not available"
            return self._finish(rec, job_answer(job_id, "003", message), 400)
        if audio is None:
            return self._finish(rec, job_answer(job_id, "005", "file is required"), 400)
        if rec.audio_duration_s is None:
            message = "File type not supported. Upload only wav, flac or mp3 formats."
            return self._finish(rec, job_answer(job_id, "002", message), 400)
        segments = self._segments(audio, rec.audio_duration_s)
        job = FakeJob(job_id, rec.audio_duration_s, segments, self.job_outcome)
        with self._lock:
            self.jobs[job_id] = job
        return self._finish(rec, job_answer(job_id, "000", "Success. Request accepted"))

    def _job_state(self, job: FakeJob) -> tuple[str, str, str]:
        """(code, message, status) of a job at its current poll count."""
        if job.polls >= self.polls_to_complete:
            if job.outcome == "failed":
                return "005", "Job failed. Please contact the developers", "failed"
            return "000", "Transcript ready.", "completed"
        if job.polls <= 1:
            return "003", "Your request is in the queue and will be processed shortly", "queued"
        return "004", "Your request is being processed", "processing"

    async def _job_request(self, request: Request) -> tuple[RecordedRequest, FakeJob | Response]:
        rec, _ = await self._record(request, None)
        if (early := await self._gate(request, rec, "stt_batch")) is not None:
            return rec, early
        job_id = request.query_params.get("job_id", "")
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            return rec, self._finish(rec, job_answer(job_id, "001", "Invalid JOB ID"))
        return rec, job

    async def _status(self, request: Request) -> Response:
        rec, job = await self._job_request(request)
        if isinstance(job, Response):
            return job
        job.polls += 1
        code, message, status = self._job_state(job)
        return self._finish(rec, job_answer(job.job_id, code, message, status=status))

    async def _transcript(self, request: Request) -> Response:
        rec, job = await self._job_request(request)
        if isinstance(job, Response):
            return job
        code, message, _ = self._job_state(job)
        if code != "000":
            return self._finish(rec, job_answer(job.job_id, code, message))
        await self._recognise(job.duration_s)
        transcript = " ".join(text.strip() for _, _, text in job.segments)
        subtitles = "".join(
            f"{i}\n{_srt_time(start)} --> {_srt_time(end)}\n{' '.join(raw_words(text))}\n\n"
            for i, (start, end, text) in enumerate(job.segments, start=1)
        )
        result = {
            "transcript": transcript,
            "original_transcript": " ".join(raw_words(transcript)),
            "channel_number": 1,
            "words": [word_timings(job.segments)],  # a list of lists, one per channel (?)
            "subtitles": subtitles,
        }
        return self._finish(rec, job_answer(job.job_id, code, message, result=result))
