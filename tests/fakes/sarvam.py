"""A protocol-faithful fake of Sarvam's speech-to-text API, served on 127.0.0.1 for tests.

Shapes follow design/providers.md and the sarvamai SDK 0.1.39 types: REST ``POST /speech-to-text``
(<= 30 s of audio) and the batch job API under ``/speech-to-text/job/v1``, whose signed Azure-style
storage URLs point back here (``/blob/{job}/{input|output}/{file}?sv=...&sig=...``). An API request
is recorded, its key checked (403), a fault popped, ``latency_s`` slept, then answered. Jobs
advance one state per status poll and finish after ``polls_to_complete`` polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._loopback import LoopbackServer

from .openai_compat import CANNED_CONSULTATION, wav_duration

Utterances = list[tuple[float, float, str, str]]  # (start s, end s, text, speaker_id)
TranscribeFn = Callable[[bytes, float], Utterances]

MODELS = frozenset({"saaras:v3", "saaras:v4", "saarika:v2.5"})
MODES = frozenset({"transcribe", "translate", "verbatim", "translit", "codemix"})
_INDIC = "hi bn kn ml mr od pa ta te en gu as ur ne kok ks sd sa sat mni brx mai doi"
LANGUAGES = frozenset({"unknown", *(f"{code}-IN" for code in _INDIC.split())})
JOBS = "/speech-to-text/job/v1"


@dataclass
class FakeFault:
    """A canned failure answered instead of success; codes as Sarvam's error docs list them."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def invalid_key(cls) -> FakeFault:
        return cls(403, "invalid_api_key_error", "Invalid API key")

    @classmethod
    def insufficient_quota(cls) -> FakeFault:
        return cls(429, "insufficient_quota_error", "Insufficient credits. Please top up.")

    @classmethod
    def rate_limited(cls, status: int = 429, retry_after_s: float | None = None) -> FakeFault:
        # Sarvam documents no rate-limit headers (?); retry-after only when a test asks for it.
        headers = {} if retry_after_s is None else {"retry-after": f"{retry_after_s:g}"}
        return cls(status, "rate_limit_exceeded_error", "Rate limit exceeded", headers)

    @classmethod
    def internal(cls) -> FakeFault:
        return cls(500, "internal_server_error", "Internal server error")

    @classmethod
    def invalid_request(cls, status: int = 400) -> FakeFault:
        return cls(status, "invalid_request_error", "Invalid request")


@dataclass
class RecordedRequest:
    """What the fake saw; ``headers`` never holds the api-subscription-key value."""

    path: str
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    received_at: float
    status: int | None = None
    finished_at: float | None = None
    form: dict[str, str] = field(default_factory=dict)
    json: Any = None
    file_bytes: int | None = None
    file_sha256: str | None = None


@dataclass
class FakeJob:
    job_id: str
    parameters: dict[str, Any]
    state: str = "Accepted"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    uploads: dict[str, bytes] = field(default_factory=dict)
    polls: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, bytes] = field(default_factory=dict)


def _request_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d}_{uuid.uuid4()}"


def canned_dialogue(audio: bytes, duration: float) -> Utterances:
    """Default ``transcribe``: the canned consultation over the audio, speakers "0"/"1" in turn."""
    step = duration / len(CANNED_CONSULTATION)
    return [
        (round(i * step, 2), round((i + 0.9) * step, 2), text, str(i % 2))
        for i, text in enumerate(CANNED_CONSULTATION)
    ]


class FakeSarvamServer(LoopbackServer):
    """Sarvam speech-to-text (REST and batch jobs) running uvicorn in a background thread."""

    label = "fake Sarvam server"

    def __init__(self, *, api_key: str | None = None, latency_s: float = 0.0) -> None:
        self.api_key = api_key
        self.latency_s = latency_s
        self.faults: deque[FakeFault] = deque()
        self.transcribe: TranscribeFn = canned_dialogue
        self.max_rest_seconds = 30.0
        self.max_batch_seconds = 7200.0  # docs say 1 h or 2 h per file (?)
        self.max_files_per_job = 20
        self.polls_to_complete = 2  # status polls after start until the job finishes
        self.fail_jobs = False  # jobs end in Failed (every file an "Internal Server Error")
        self.limit_violations = 0  # REST requests refused for audio over max_rest_seconds
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, FakeJob] = {}
        self._secret = uuid.uuid4().bytes
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/speech-to-text", self._rest, methods=["POST"]),
                Route(JOBS, self._create_job, methods=["POST"]),
                Route(f"{JOBS}/upload-files", self._upload_links, methods=["POST"]),
                Route(f"{JOBS}/download-files", self._download_links, methods=["POST"]),
                Route(JOBS + "/{job_id}/start", self._start, methods=["POST"]),
                Route(JOBS + "/{job_id}/status", self._status, methods=["GET"]),
                Route("/blob/{job_id}/{kind}/{name}", self._blob, methods=["PUT", "GET"]),
            ]
        )

    @property
    def base_url(self) -> str:
        return self.root_url

    def requests_to(self, path_suffix: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            requests = list(self.requests)
        return [r for r in requests if r.path.endswith(path_suffix) and method in (None, r.method)]

    def blob_puts(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/blob/") and r.method == "PUT"]

    # -- plumbing ------------------------------------------------------------------------------

    def _record(self, request: Request) -> RecordedRequest:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "api-subscription-key" in headers:
            headers["api-subscription-key"] = "<redacted>"
        query = dict(request.query_params)
        rec = RecordedRequest(request.url.path, request.method, query, headers, time.monotonic())
        with self._lock:
            self.requests.append(rec)
        return rec

    def _finish(self, rec: RecordedRequest, response: Response) -> Response:
        rec.status, rec.finished_at = response.status_code, time.monotonic()
        return response

    def _error(self, rec: RecordedRequest, fault: FakeFault) -> Response:
        error = {"message": fault.message, "code": fault.code, "request_id": _request_id()}
        body = {"error": error}
        return self._finish(rec, JSONResponse(body, fault.status, headers=fault.headers))

    def _invalid(self, rec: RecordedRequest, message: str, status: int = 400) -> Response:
        return self._error(rec, FakeFault(status, "invalid_request_error", message))

    async def _open(self, request: Request) -> tuple[RecordedRequest, Response | None]:
        """Record (with a JSON body), check the key, pop a fault, sleep; maybe an early answer."""
        rec = self._record(request)
        if request.headers.get("content-type", "").startswith("application/json"):
            with contextlib.suppress(ValueError):
                rec.json = json.loads(await request.body())
        key = request.headers.get("api-subscription-key")
        if self.api_key is not None and key != self.api_key:
            return rec, self._error(rec, FakeFault.invalid_key())
        fault = self.faults.popleft() if self.faults else None  # only the server loop pops
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        return rec, None if fault is None else self._error(rec, fault)

    def _sign(self, job_id: str, kind: str, name: str) -> str:
        return hmac.new(self._secret, f"{job_id}/{kind}/{name}".encode(), "sha256").hexdigest()

    def _signed_url(self, job_id: str, kind: str, name: str) -> dict[str, Any]:
        query = f"sv=2024-11-04&sr=b&sp={'cw' if kind == 'input' else 'r'}"
        query += f"&sig={self._sign(job_id, kind, name)}"
        url = f"{self.base_url}/blob/{job_id}/{kind}/{quote(name, safe='')}?{query}"
        return {"file_url": url, "file_metadata": None}

    def _job_status(self, job: FakeJob) -> dict[str, Any]:
        ok = sum(1 for d in job.details if d["state"] == "Success")
        return {
            "job_id": job.job_id,
            "job_state": job.state,
            "created_at": job.created_at,
            "updated_at": datetime.now(UTC).isoformat(),
            "storage_container_type": "Azure",
            "total_files": len(job.uploads),
            "successful_files_count": ok if job.details else None,
            "failed_files_count": len(job.details) - ok if job.details else None,
            "error_message": "Job failed" if job.state == "Failed" else None,
            "job_details": job.details,
        }

    def _transcription(self, audio: bytes, duration: float, params: dict[str, Any]) -> Any:
        """The REST body, or with diarization the batch per-file output (docs' example shape)."""
        utterances = self.transcribe(audio, duration)
        language = params.get("language_code") or "unknown"
        body: dict[str, Any] = {
            "request_id": _request_id(),
            "transcript": " ".join(text for _, _, text, _ in utterances),
            "timestamps": None,
            "language_code": "en-IN" if language == "unknown" else language,
            # Only language detection ("unknown") reports a probability.
            "language_probability": 0.97 if language == "unknown" else None,
        }
        if params.get("with_timestamps") in (True, "true", "True"):
            body["timestamps"] = {
                "words": [text for _, _, text, _ in utterances],
                "start_time_seconds": [start for start, _, _, _ in utterances],
                "end_time_seconds": [end for _, end, _, _ in utterances],
            }
        if params.get("with_diarization"):
            entries = [
                {"transcript": t, "start_time_seconds": s, "end_time_seconds": e, "speaker_id": k}
                for s, e, t, k in utterances
            ]
            body["diarized_transcript"] = {"entries": entries}
        return body

    def _check_parameters(self, params: dict[str, Any]) -> str | None:
        for key, allowed in (("model", MODELS), ("mode", MODES), ("language_code", LANGUAGES)):
            if params.get(key) not in (None, *allowed):
                return f"Invalid {key}"
        speakers = params.get("num_speakers")
        if speakers is not None and not (isinstance(speakers, int) and 1 <= speakers <= 10):
            return "num_speakers must be between 1 and 10"
        return None

    def _job(self, job_id: Any) -> FakeJob | None:
        with self._lock:
            return self.jobs.get(str(job_id))

    # -- endpoints -----------------------------------------------------------------------------

    async def _rest(self, request: Request) -> Response:
        rec, early = await self._open(request)
        if early is not None:
            return early
        audio: bytes | None = None
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, str):
                    rec.form[key] = value
                elif key == "file":
                    audio = await value.read()
                    rec.file_bytes, rec.file_sha256 = len(audio), hashlib.sha256(audio).hexdigest()
        if audio is None:
            return self._invalid(rec, "Field required: file", 422)
        if problem := self._check_parameters(rec.form):
            return self._invalid(rec, problem)
        duration = wav_duration(audio)
        if duration is None:
            return self._invalid(rec, "Invalid audio file")
        if duration > self.max_rest_seconds:
            with self._lock:
                self.limit_violations += 1
            return self._invalid(rec, "Audio duration exceeds the maximum limit of 30 seconds")
        return self._finish(rec, JSONResponse(self._transcription(audio, duration, rec.form)))

    async def _create_job(self, request: Request) -> Response:
        rec, early = await self._open(request)
        if early is not None:
            return early
        body = rec.json if isinstance(rec.json, dict) else {}
        params = body.get("job_parameters")
        if not isinstance(params, dict):
            return self._invalid(rec, "Field required: job_parameters", 422)
        if problem := self._check_parameters(params):
            return self._invalid(rec, problem)
        job = FakeJob(str(uuid.uuid4()), params)
        with self._lock:
            self.jobs[job.job_id] = job
        answer: dict[str, Any] = {"job_id": job.job_id, "storage_container_type": "Azure"}
        answer |= {"job_parameters": params, "job_state": job.state}
        return self._finish(rec, JSONResponse(answer))

    async def _upload_links(self, request: Request) -> Response:
        rec, early = await self._open(request)
        if early is not None:
            return early
        body = rec.json if isinstance(rec.json, dict) else {}
        job, files = self._job(body.get("job_id")), body.get("files")
        if job is None:
            return self._invalid(rec, "Job not found")
        if job.state != "Accepted":
            return self._invalid(rec, "Files can only be uploaded before the job starts")
        if not isinstance(files, list) or not files or len(files) > self.max_files_per_job:
            return self._invalid(rec, f"files must list 1 to {self.max_files_per_job} names")
        urls = {str(name): self._signed_url(job.job_id, "input", str(name)) for name in files}
        answer = {"job_id": job.job_id, "job_state": job.state, "upload_urls": urls}
        return self._finish(rec, JSONResponse(answer | {"storage_container_type": "Azure"}))

    async def _start(self, request: Request) -> Response:
        rec, early = await self._open(request)
        if early is not None:
            return early
        job = self._job(request.path_params["job_id"])
        if job is None:
            return self._invalid(rec, "Job not found")
        if job.state != "Accepted":
            return self._invalid(rec, "Job has already been started")
        if not job.uploads:
            return self._invalid(rec, "No files uploaded for this job")
        job.state = "Pending"
        return self._finish(rec, JSONResponse(self._job_status(job)))

    async def _status(self, request: Request) -> Response:
        rec, early = await self._open(request)
        if early is not None:
            return early
        job = self._job(request.path_params["job_id"])
        if job is None:
            return self._invalid(rec, "Job not found")
        if job.state in ("Pending", "Running"):
            job.polls += 1
            job.state = "Running"
            if job.polls >= self.polls_to_complete:
                self._process(job)
        return self._finish(rec, JSONResponse(self._job_status(job)))

    def _process(self, job: FakeJob) -> None:
        for index, (name, audio) in enumerate(job.uploads.items()):
            detail: dict[str, Any] = {"inputs": [{"file_name": name, "file_id": str(index)}]}
            duration = wav_duration(audio)
            if self.fail_jobs:
                detail |= {"state": "Internal Server Error", "error_message": "Processing failed"}
            elif duration is None or duration > self.max_batch_seconds:
                detail |= {"state": "API Error", "error_message": "Invalid or too long audio"}
            else:
                output = f"{index}.json"
                result = self._transcription(audio, duration, job.parameters)
                job.outputs[output] = json.dumps(result).encode()
                detail["state"] = "Success"
                detail["outputs"] = [{"file_name": output, "file_id": str(index)}]
            job.details.append(detail)
        succeeded = sum(1 for d in job.details if d["state"] == "Success")
        # The SDK docs mention PartiallyCompleted, though its JobState type does not list it.
        states = {len(job.details): "Completed", 0: "Failed"}
        job.state = states.get(succeeded, "PartiallyCompleted")

    async def _download_links(self, request: Request) -> Response:
        rec, early = await self._open(request)
        if early is not None:
            return early
        body = rec.json if isinstance(rec.json, dict) else {}
        job, files = self._job(body.get("job_id")), body.get("files")
        if job is None:
            return self._invalid(rec, "Job not found")
        if job.state not in ("Completed", "PartiallyCompleted"):
            return self._invalid(rec, "Job has not completed")
        if not isinstance(files, list) or not files or any(f not in job.outputs for f in files):
            return self._invalid(rec, "files must name outputs listed in job_details")
        urls = {name: self._signed_url(job.job_id, "output", name) for name in files}
        answer = {"job_id": job.job_id, "job_state": job.state, "download_urls": urls}
        return self._finish(rec, JSONResponse(answer | {"storage_container_type": "Azure"}))

    async def _blob(self, request: Request) -> Response:
        """Azure Blob Storage behind a SAS URL: no API key, the signature is the authority."""
        rec = self._record(request)
        job_id, kind, name = (request.path_params[k] for k in ("job_id", "kind", "name"))
        job, writing = self._job(job_id), request.method == "PUT"
        allowed = kind == ("input" if writing else "output")
        sig = request.query_params.get("sig", "")
        signed = hmac.compare_digest(sig, self._sign(job_id, kind, name))
        if job is None or not allowed or not signed:
            return self._blob_error(rec, 403, "AuthenticationFailed")
        if not writing:
            if name not in job.outputs:
                return self._blob_error(rec, 404, "BlobNotFound")
            return self._finish(rec, Response(job.outputs[name], media_type="application/json"))
        if request.headers.get("x-ms-blob-type") != "BlockBlob":
            return self._blob_error(rec, 400, "MissingRequiredHeader")
        data = await request.body()
        rec.file_bytes, rec.file_sha256 = len(data), hashlib.sha256(data).hexdigest()
        job.uploads[name] = data
        return self._finish(rec, Response(status_code=201))

    def _blob_error(self, rec: RecordedRequest, status: int, code: str) -> Response:
        xml = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code></Error>'
        headers = {"x-ms-error-code": code}
        return self._finish(rec, Response(xml, status, headers, media_type="application/xml"))
