"""A protocol-faithful fake of Groq's OpenAI-compatible API, served on 127.0.0.1 for tests.

Shapes follow design/providers.md (Groq): routes under ``/openai/v1``, errors as
``{"error": {"message", "type", "code"}}``, Groq's ``x-ratelimit-*`` and ``x-request-id`` headers on
every response. Tests steer it through attributes they may change at any time. A model request is
recorded, its key checked (401), a fault popped, ``latency_s`` slept, then the fault (if any) or
input validation and success answered. Chat answers come from ``chat_replies`` (a queue of
scripted assistant messages) while it lasts, then from the ``chat`` responder.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import threading
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes._loopback import LoopbackServer

Segments = list[tuple[float, float, str]]  # (start s, end s, text)
TranscribeFn = Callable[[bytes, float | None, dict[str, str]], Segments]
ChatFn = Callable[[dict[str, Any]], "str | ChatReply"]

_WHISPER = "whisper-large-v3 whisper-large-v3-turbo distil-whisper-large-v3-en whisper-1"
TRANSCRIPTION_MODELS = frozenset([*_WHISPER.split(), "gpt-4o-transcribe"])
CHAT_MODELS = frozenset(["llama-3.3-70b-versatile", "llama-3.1-8b-instant"])
CHAT_MODELS |= {"openai/gpt-oss-120b", "openai/gpt-oss-20b"}
# Groq takes response_format json_schema (strict, constrained decoding) only on these; others
# answer 400. Groq's best-effort json_schema models (kimi-k2, llama-4) are not faked here.
JSON_SCHEMA_MODELS = frozenset({"openai/gpt-oss-120b", "openai/gpt-oss-20b"})
_CHAT_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
_RESPONSE_FORMATS = ("json", "text", "verbose_json")
_OWNERS = {"llama": "Meta", "distil": "Hugging Face"}
_USAGE_TIMES = dict(queue_time=0.01, prompt_time=0.002, completion_time=0.05, total_time=0.052)
_SEGMENT_STATS = dict(temperature=0.0, avg_logprob=-0.2, compression_ratio=1.4, no_speech_prob=0.01)
# Groq reports the detected language by name in verbose_json (?): docs show "English", OpenAI
# returns lower case. Callers should not depend on the spelling.
_LANGUAGE_NAMES = {"en": "English", "hi": "Hindi", "ta": "Tamil", "te": "Telugu", "bn": "Bengali"}

CANNED_CONSULTATION = [
    "Good morning, what brings you in today?",
    "I've had a cough for about a week, and chest pain when I breathe in deeply.",
    "Are you bringing up any phlegm, and have you had a fever?",
    "Yes, yellow phlegm, and my temperature was 38.2 degrees last night.",
    "Let me check your vitals. Your blood pressure is 130 over 85 and your pulse is 92.",
    "Oxygen saturation is 96 percent, and I can hear crackles at the right lung base.",
    "Are you allergic to any medicines, such as penicillin?",
    "No, no allergies that I know of.",
    "It's a chest infection; start amoxicillin 500 milligrams three times a day for five days.",
    "Drink plenty of fluids, and come back if the chest pain worsens or you feel short of breath.",
]


@dataclass
class FakeFault:
    """A canned failure answered instead of success; bodies as Groq documents them."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def rate_limited(cls, retry_after_s: float, kind: str = "requests") -> FakeFault:
        wait = f"{retry_after_s:g}"
        message = f"Rate limit reached on {kind} per minute. Please try again in {wait}s."
        return cls(429, _error_body(message, kind, "rate_limit_exceeded"), {"retry-after": wait})

    @classmethod
    def unavailable(cls) -> FakeFault:
        # Groq's 503 body is not documented in detail (?); this mirrors its other error bodies.
        body = _error_body("Service Unavailable", "internal_server_error", "service_unavailable")
        return cls(503, body)

    @classmethod
    def invalid_key(cls) -> FakeFault:
        return cls(401, _error_body("Invalid API Key", "invalid_request_error", "invalid_api_key"))

    @classmethod
    def too_large(cls) -> FakeFault:
        body = _error_body("Request Entity Too Large", "invalid_request_error", "request_too_large")
        return cls(413, body)


@dataclass
class ChatReply:
    """A scripted assistant message; ``finish_reason="length"`` fakes an answer cut off at
    max_completion_tokens."""

    content: str
    finish_reason: str = "stop"


@dataclass
class RecordedRequest:
    """What the fake saw of one request; ``headers`` never holds the Authorization value."""

    path: str
    method: str
    received_at: float
    request_id: str
    headers: dict[str, str]
    finished_at: float | None = None
    status: int | None = None
    file_sha256: str | None = None
    file_bytes: int | None = None
    form: dict[str, str] = field(default_factory=dict)
    json: dict[str, Any] | None = None


def _error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}


def _groq_duration(seconds: float) -> str:
    """Format like Groq's reset headers: ``7.66s`` or ``2m59.56s``."""
    minutes, rest = divmod(max(seconds, 0.0), 60.0)
    return f"{int(minutes)}m{rest:.2f}s" if minutes else f"{rest:.2f}s"


def wav_duration(data: bytes) -> float | None:
    """Duration of a WAV file in seconds, or None when the bytes are not a readable WAV."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        return None


def canned_consultation(audio: bytes, duration: float | None, form: dict[str, str]) -> Segments:
    """Default ``transcribe``: the canned consultation spread evenly over the audio."""
    step = (duration or 60.0) / len(CANNED_CONSULTATION)
    return [
        (round(i * step, 2), round((i + 1) * step, 2), text)
        for i, text in enumerate(CANNED_CONSULTATION)
    ]


def default_chat(payload: dict[str, Any]) -> str:
    """Default ``chat``: a JSON placeholder note quoting the start of the last message."""
    last = payload["messages"][-1].get("content") or ""
    return json.dumps({"note": f"Fake note for: {str(last)[:80]}"})


class FakeOpenAIServer(LoopbackServer):
    """Groq-flavoured OpenAI-compatible server running uvicorn in a background thread."""

    label = "fake OpenAI server"

    def __init__(self, *, api_key: str | None = None, latency_s: float = 0.0) -> None:
        self.api_key = api_key
        self.latency_s = latency_s
        self.max_file_bytes = 25 * 1024 * 1024  # Groq free tier
        self.ratelimit_requests = 14_400  # per day
        self.ratelimit_tokens = 12_000  # per minute
        self.faults: deque[FakeFault] = deque()
        # Random rate limiting: this fraction of model requests answers 429 with retry-after
        # (seeded, so a failing run can be replayed).
        self.rate_limit_fraction = 0.0
        self.rate_limit_retry_after_s = 1.0
        self.random = random.Random(1234)
        # Extra latency proportional to the audio sent (seconds per audio-minute).
        self.latency_per_audio_minute_s = 0.0
        self.transcribe: TranscribeFn | None = None
        self.chat: ChatFn | None = None
        self.chat_replies: deque[str | ChatReply] = deque()
        self.json_schema_models: set[str] = set(JSON_SCHEMA_MODELS)
        self.transcription_models: set[str] = set(TRANSCRIPTION_MODELS)
        self.chat_models: set[str] = set(CHAT_MODELS)
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._requests_used = self._tokens_used = 0
        prefix = "/openai/v1"
        self.app = Starlette(
            routes=[
                Route(f"{prefix}/audio/transcriptions", self._transcriptions, methods=["POST"]),
                Route(f"{prefix}/chat/completions", self._chat_completions, methods=["POST"]),
                Route(f"{prefix}/models", self._models, methods=["GET"]),
            ]
        )

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL (Groq's path shape), for the openai SDK and our own adapters."""
        return f"{self.root_url}/openai/v1"

    def transcription_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/audio/transcriptions")]

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _record(self, request: Request) -> RecordedRequest:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = "<redacted>"
        now, request_id = time.monotonic(), f"req_{uuid.uuid4().hex[:26]}"
        rec = RecordedRequest(request.url.path, request.method, now, request_id, headers)
        with self._lock:
            self._requests_used += 1
            self.requests.append(rec)
        return rec

    def _finish(self, rec: RecordedRequest, response: Response, tokens: int = 0) -> Response:
        with self._lock:
            self._tokens_used += tokens
            used_requests, used_tokens = self._requests_used, self._tokens_used
        limit_req, limit_tok = self.ratelimit_requests, self.ratelimit_tokens
        # Requests replenish over a day, tokens over a minute (Groq's RPD and TPM windows).
        headers = response.headers
        headers["x-ratelimit-limit-requests"] = str(limit_req)
        headers["x-ratelimit-remaining-requests"] = str(max(0, limit_req - used_requests))
        headers["x-ratelimit-limit-tokens"] = str(limit_tok)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limit_tok - used_tokens))
        headers["x-ratelimit-reset-requests"] = _groq_duration(86_400 * used_requests / limit_req)
        headers["x-ratelimit-reset-tokens"] = _groq_duration(60 * used_tokens / limit_tok)
        headers["x-request-id"] = rec.request_id
        rec.status = response.status_code
        rec.finished_at = time.monotonic()
        return response

    def _fail(
        self, rec: RecordedRequest, status: int, msg: str, code: str | None = None
    ) -> Response:
        body = _error_body(msg, "invalid_request_error", code)
        return self._finish(rec, JSONResponse(body, status_code=status))

    async def _gate(self, request: Request, rec: RecordedRequest) -> Response | None:
        """Key check, fault injection and latency shared by every model endpoint."""
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            fault: FakeFault | None = FakeFault.invalid_key()
        else:
            # Only the server's event loop pops, so check-then-pop cannot race.
            fault = self.faults.popleft() if self.faults else None
            if fault is None and self.random.random() < self.rate_limit_fraction:
                fault = FakeFault.rate_limited(self.rate_limit_retry_after_s)
            if self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
        if fault is None:
            return None
        response = Response(status_code=fault.status)
        if fault.body is not None:
            response = JSONResponse(fault.body, status_code=fault.status)
        response.headers.update(fault.headers)
        return self._finish(rec, response)

    def _unknown_model(self, rec: RecordedRequest, model: str) -> Response:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return self._fail(rec, 404, message, "model_not_found")

    async def _transcriptions(self, request: Request) -> Response:
        rec = self._record(request)
        audio: bytes | None = None
        try:
            async with request.form() as form:
                for key, value in form.multi_items():
                    if isinstance(value, str):  # repeated fields, e.g. granularities, join with ","
                        rec.form[key] = f"{rec.form[key]},{value}" if key in rec.form else value
                    elif key == "file":
                        audio = await value.read()
                        rec.file_bytes, rec.file_sha256 = len(audio), sha256(audio).hexdigest()
        except Exception as exc:  # malformed multipart: the real API answers 400 too
            return self._fail(rec, 400, f"could not parse multipart form: {exc}")
        if (early := await self._gate(request, rec)) is not None:
            return early
        model = rec.form.get("model")
        response_format = rec.form.get("response_format", "json")
        if audio is None:
            return self._fail(rec, 400, "either file or url must be provided")
        if not model:
            return self._fail(rec, 400, "'model' : property 'model' is missing")
        if model not in self.transcription_models:
            return self._unknown_model(rec, model)
        if len(audio) > self.max_file_bytes:
            return self._fail(rec, 413, "Request Entity Too Large", "request_too_large")
        if not audio:
            return self._fail(rec, 400, "could not process file - is it a valid media file?")
        if response_format not in _RESPONSE_FORMATS:
            return self._fail(rec, 400, f"response_format must be one of {_RESPONSE_FORMATS}")
        duration = wav_duration(audio)
        if self.latency_per_audio_minute_s > 0 and duration:
            await asyncio.sleep(self.latency_per_audio_minute_s * duration / 60)
        segments = (self.transcribe or canned_consultation)(audio, duration, dict(rec.form))
        text = "".join(f" {seg_text.strip()}" for _, _, seg_text in segments)
        x_groq = {"id": rec.request_id}
        if response_format == "text":
            return self._finish(rec, PlainTextResponse(text))
        if response_format == "json":
            return self._finish(rec, JSONResponse({"text": text, "x_groq": x_groq}))
        language = rec.form.get("language", "en")
        if duration is None:
            duration = segments[-1][1] if segments else 0.0
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": _LANGUAGE_NAMES.get(language, language),
            "duration": duration,
            "text": text,
            "segments": [_segment(i, s, e, t) for i, (s, e, t) in enumerate(segments)],
            "x_groq": x_groq,
        }
        if "word" in rec.form.get("timestamp_granularities[]", "").split(","):
            body["words"] = [w for s, e, t in segments for w in _words(s, e, t)]
        return self._finish(rec, JSONResponse(body))

    async def _chat_completions(self, request: Request) -> Response:
        rec = self._record(request)
        try:
            payload = json.loads(await request.body())
        except ValueError:
            payload = None
        rec.json = payload if isinstance(payload, dict) else None
        if (early := await self._gate(request, rec)) is not None:
            return early
        if rec.json is None:
            return self._fail(rec, 400, "request body must be a JSON object")
        model, messages = rec.json.get("model"), rec.json.get("messages")
        if not model:
            return self._fail(rec, 400, "'model' : property 'model' is missing")
        if not isinstance(messages, list) or not messages:
            return self._fail(rec, 400, "'messages' : property 'messages' is missing")
        if model not in self.chat_models:
            return self._unknown_model(rec, str(model))
        if rec.json.get("stream"):
            return self._fail(rec, 400, "stream=true is not supported by the fake")
        if (problem := self._response_format_problem(rec.json)) is not None:
            return self._fail(rec, 400, problem)
        # Popped on the server's event loop only, like the faults.
        reply = self.chat_replies.popleft() if self.chat_replies else None
        if reply is None:
            reply = (self.chat or default_chat)(rec.json)
        if isinstance(reply, str):
            reply = ChatReply(reply)
        content = reply.content
        # Roughly four characters per token, as tokenizers average on English text.
        prompt, completion = len(json.dumps(messages)) // 4 + 1, len(content) // 4 + 1
        usage: dict[str, float] = {"prompt_tokens": prompt, "completion_tokens": completion}
        usage |= {"total_tokens": prompt + completion, **_USAGE_TIMES}
        message = {"role": "assistant", "content": content}
        choice = {"index": 0, "message": message, "logprobs": None}
        choice["finish_reason"] = reply.finish_reason
        body = {
            "id": f"chatcmpl-{uuid.uuid4()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
            "system_fingerprint": f"fp_{uuid.uuid4().hex[:10]}",
            "x_groq": {"id": rec.request_id},
        }
        return self._finish(rec, JSONResponse(body), tokens=prompt + completion)

    def _response_format_problem(self, payload: dict[str, Any]) -> str | None:
        """Why the API would refuse the request's response_format (400), or None."""
        response_format = payload.get("response_format")
        if response_format is None:
            return None
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in _CHAT_RESPONSE_FORMATS:
            return f"'response_format.type' : value must be one of {_CHAT_RESPONSE_FORMATS}"
        if kind == "json_object":
            # OpenAI documents this 400; Groq's JSON mode asks for the same instruction (?).
            said = json.dumps(payload["messages"]).lower()
            if "json" not in said:
                return (
                    "'messages' must contain the word 'json' in some form, to use "
                    "'response_format' of type 'json_object'."
                )
        if kind != "json_schema":
            return None
        if payload["model"] not in self.json_schema_models:
            return f"This model does not support response format `json_schema`: {payload['model']}"
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            return "'response_format.json_schema.schema' : property 'schema' is missing"
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            return "'response_format.json_schema.name' : property 'name' is missing"
        if spec.get("strict"):
            return _strict_schema_problem(spec["schema"], spec["name"])
        return None

    async def _models(self, request: Request) -> Response:
        rec = self._record(request)
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            fault = FakeFault.invalid_key()  # listing models needs a valid key, as on Groq
            assert fault.body is not None
            return self._finish(rec, JSONResponse(fault.body, status_code=fault.status))
        data = [
            {"id": name, "object": "model", "created": 1_693_721_698, "active": True}
            | {"owned_by": _OWNERS.get(name.split("-")[0], "OpenAI")}
            | {"context_window": 448 if name in self.transcription_models else 131_072}
            for name in sorted(self.transcription_models | self.chat_models)
        ]
        return self._finish(rec, JSONResponse({"object": "list", "data": data}))


def _strict_schema_problem(schema: Any, name: str, where: str = "") -> str | None:
    """Strict mode's rules (OpenAI and Groq docs): every object sets additionalProperties false
    and requires all of its properties. Wording follows OpenAI's 400 message."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            if (problem := _strict_schema_problem(item, name, f"{where}[{i}]")) is not None:
                return problem
        return None
    if not isinstance(schema, dict):
        return None
    prefix = f"Invalid schema for response_format '{name}': In context=({where or '()'}), "
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return prefix + "'additionalProperties' is required to be supplied and to be false."
        missing = set(schema.get("properties", {})) - set(schema.get("required", []))
        if missing:
            return prefix + f"'required' must include every key in properties: {sorted(missing)}"
    for key, value in schema.items():
        children = value.values() if key in ("properties", "$defs") else [value]
        for child in children:
            if (problem := _strict_schema_problem(child, name, f"{where}.{key}")) is not None:
                return problem
    return None


def _segment(index: int, start: float, end: float, text: str) -> dict[str, Any]:
    return {
        "id": index,
        "seek": int(start * 100),  # Whisper counts seek in 10 ms frames
        "start": start,
        "end": end,
        "text": f" {text.strip()}",
        "tokens": [50_364 + i for i in range(len(text.split()))],
        **_SEGMENT_STATS,
    }


def _words(start: float, end: float, text: str) -> list[dict[str, Any]]:
    words = text.split()
    step = (end - start) / max(len(words), 1)
    return [
        {"word": w, "start": round(start + i * step, 2), "end": round(start + (i + 1) * step, 2)}
        for i, w in enumerate(words)
    ]
