"""Contract tests: the official openai and groq SDKs accept what the fake server answers.

If a future SDK release rejects the fake's shapes, these tests fail before any adapter test
silently passes against a fake that no longer matches the real API.
"""

from __future__ import annotations

import hashlib
import io
import json
import wave
from collections.abc import Iterator
from typing import Any

import groq
import openai
import pydantic
import pytest
from openai.types.audio import TranscriptionVerbose
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from .openai_compat import ChatReply, FakeFault, FakeOpenAIServer

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

API_KEY = "gsk_test_key"
CHAT_MODEL = "llama-3.3-70b-versatile"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You write clinical notes as JSON."},
    {"role": "user", "content": "Patient has a cough for one week."},
]


def silent_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def openai_client(fake: FakeOpenAIServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0) as client:
        yield client


@pytest.fixture
def groq_client(fake: FakeOpenAIServer) -> Iterator[groq.Groq]:
    # The groq SDK appends /openai/v1/... itself, so it gets the bare origin.
    with groq.Groq(api_key=API_KEY, base_url=fake.root_url, max_retries=0) as client:
        yield client


@pytest.fixture(params=["openai", "groq"])
def sdk_client(
    request: pytest.FixtureRequest, openai_client: openai.OpenAI, groq_client: groq.Groq
) -> Any:
    """Either SDK: both expose the same chat API and the same exception class names."""
    return openai_client if request.param == "openai" else groq_client


def sdk_errors(client: Any) -> Any:
    return openai if isinstance(client, openai.OpenAI) else groq


def test_openai_sdk_parses_verbose_json_transcription(
    fake: FakeOpenAIServer, openai_client: openai.OpenAI
) -> None:
    audio = silent_wav(1.0)
    result = openai_client.audio.transcriptions.create(
        file=("visit.wav", audio, "audio/wav"),
        model="whisper-large-v3",
        response_format="verbose_json",
        language="en",
    )

    assert result.duration == pytest.approx(1.0)
    assert result.segments is not None and 8 <= len(result.segments) <= 12
    assert all(0 <= s.start < s.end <= 1.0 for s in result.segments)
    assert "amoxicillin 500 milligrams" in result.text
    assert result.words is None  # only sent when word granularity is requested
    [recorded] = fake.transcription_requests()
    assert recorded.file_sha256 == hashlib.sha256(audio).hexdigest()
    assert recorded.file_bytes == len(audio)
    assert recorded.form["model"] == "whisper-large-v3"
    assert recorded.form["language"] == "en"
    assert recorded.headers["authorization"] == "<redacted>"
    assert recorded.status == 200 and recorded.finished_at is not None


def test_verbose_json_validates_strictly_against_openai_types(
    openai_client: openai.OpenAI,
) -> None:
    # SDK parsing is lenient; strict pydantic validation catches missing or mistyped fields.
    raw = openai_client.audio.transcriptions.with_raw_response.create(
        file=("visit.wav", silent_wav(2.0), "audio/wav"),
        model="whisper-large-v3-turbo",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    body = json.loads(raw.text)
    verbose = TranscriptionVerbose.model_validate(body)

    assert verbose.words and verbose.words[-1].end == pytest.approx(2.0)
    assert body["x_groq"]["id"] == raw.headers["x-request-id"]
    assert {"tokens", "seek", "avg_logprob", "no_speech_prob"} <= set(body["segments"][0])


def test_groq_sdk_parses_verbose_json_transcription(
    fake: FakeOpenAIServer, groq_client: groq.Groq
) -> None:
    result = groq_client.audio.transcriptions.create(
        file=("visit.wav", silent_wav(1.0)),
        model="whisper-large-v3",
        response_format="verbose_json",
        language="en",
    )

    # groq's Transcription type only declares `text`; the rest arrives as extra fields.
    segments = result.model_extra["segments"] if result.model_extra else []
    assert 8 <= len(segments) <= 12
    assert all({"start", "end", "text"} <= set(s) for s in segments)
    assert "blood pressure is 130 over 85" in result.text
    assert fake.transcription_requests()[0].path == "/openai/v1/audio/transcriptions"


def test_text_response_format_returns_plain_text(openai_client: openai.OpenAI) -> None:
    text = openai_client.audio.transcriptions.create(
        file=("visit.wav", silent_wav(), "audio/wav"), model="whisper-1", response_format="text"
    )

    assert isinstance(text, str) and text.strip().startswith("Good morning")


def test_chat_completion_parses_with_usage(fake: FakeOpenAIServer, sdk_client: Any) -> None:
    fake.chat = lambda payload: json.dumps({"subjective": payload["messages"][-1]["content"]})
    completion = sdk_client.chat.completions.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
        response_format={"type": "json_object"},
        temperature=0,
    )

    assert json.loads(completion.choices[0].message.content or "") == {
        "subjective": "Patient has a cough for one week."
    }
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    [recorded] = fake.chat_requests()
    assert recorded.json is not None
    assert recorded.json["response_format"] == {"type": "json_object"}


class Finding(pydantic.BaseModel):
    text: str
    evidence: list[str]


class SoapNote(pydantic.BaseModel):
    subjective: list[Finding]
    plan: list[Finding]


def test_openai_sdk_parses_a_strict_json_schema_answer(
    fake: FakeOpenAIServer, openai_client: openai.OpenAI
) -> None:
    note = SoapNote(subjective=[Finding(text="Cough for a week.", evidence=["u2"])], plan=[])
    fake.chat_replies.append(note.model_dump_json())
    # The SDK turns the model into a strict json_schema; the fake checks strict mode's rules.
    completion = openai_client.chat.completions.parse(
        model="openai/gpt-oss-20b", messages=MESSAGES, response_format=SoapNote
    )

    assert completion.choices[0].message.parsed == note
    [recorded] = fake.chat_requests()
    assert recorded.json is not None
    response_format = recorded.json["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == "SoapNote"


def test_json_schema_is_refused_where_groq_refuses_it(
    fake: FakeOpenAIServer, sdk_client: Any
) -> None:
    errors = sdk_errors(sdk_client)
    schema = {"type": "object", "properties": {"plan": {"type": "string"}}}
    json_schema = {"name": "note", "schema": schema, "strict": True}

    def create(model: str, response_format: dict[str, Any]) -> Any:
        return sdk_client.chat.completions.create(
            model=model, messages=MESSAGES, response_format=response_format
        )

    with pytest.raises(errors.BadRequestError) as unsupported:
        create(CHAT_MODEL, {"type": "json_schema", "json_schema": json_schema})
    with pytest.raises(errors.BadRequestError) as not_strict:  # additionalProperties missing
        create("openai/gpt-oss-120b", {"type": "json_schema", "json_schema": json_schema})
    schema |= {"additionalProperties": False, "required": ["plan"]}
    fake.chat_replies.append(ChatReply('{"plan": "Rest."}', finish_reason="length"))
    accepted = create("openai/gpt-oss-120b", {"type": "json_schema", "json_schema": json_schema})

    assert "does not support response format `json_schema`" in str(unsupported.value)
    assert "additionalProperties" in str(not_strict.value)
    assert accepted.choices[0].message.content == '{"plan": "Rest."}'
    assert accepted.choices[0].finish_reason == "length"
    assert [r.status for r in fake.chat_requests()] == [400, 400, 200]


def test_chat_completion_validates_strictly_and_carries_groq_extras(
    openai_client: openai.OpenAI,
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
    )
    body = json.loads(raw.text)

    ChatCompletion.model_validate(body)
    assert {"queue_time", "prompt_time", "completion_time", "total_time"} <= set(body["usage"])
    assert body["x_groq"]["id"] == raw.headers["x-request-id"]


def test_wrong_key_raises_authentication_error(fake: FakeOpenAIServer) -> None:
    client = openai.OpenAI(api_key="wrong", base_url=fake.base_url, max_retries=0)
    with client, pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)

    assert caught.value.code == "invalid_api_key"
    assert fake.chat_requests()[0].status == 401


def test_injected_faults_map_to_sdk_exceptions(fake: FakeOpenAIServer, sdk_client: Any) -> None:
    errors = sdk_errors(sdk_client)
    fake.faults.extend(
        [FakeFault.invalid_key(), FakeFault.rate_limited(7), FakeFault.unavailable()]
    )

    def create() -> Any:
        return sdk_client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)

    with pytest.raises(errors.AuthenticationError):
        create()
    with pytest.raises(errors.RateLimitError) as rate_limited:
        create()
    with pytest.raises(errors.InternalServerError) as unavailable:
        create()

    assert rate_limited.value.response.headers["retry-after"] == "7"
    assert rate_limited.value.response.json()["error"] == {
        "message": "Rate limit reached on requests per minute. Please try again in 7s.",
        "type": "requests",
        "code": "rate_limit_exceeded",
    }
    assert unavailable.value.status_code == 503
    assert "x-ratelimit-remaining-requests" in unavailable.value.response.headers
    assert create().choices[0].message.content  # the fault queue is drained
    assert [r.status for r in fake.chat_requests()] == [401, 429, 503, 200]


def test_too_large_and_unknown_model_are_rejected(
    fake: FakeOpenAIServer, openai_client: openai.OpenAI
) -> None:
    fake.max_file_bytes = 1_000
    with pytest.raises(openai.APIStatusError) as too_large:
        openai_client.audio.transcriptions.create(
            file=("visit.wav", silent_wav(), "audio/wav"), model="whisper-large-v3"
        )
    with pytest.raises(openai.NotFoundError) as unknown:
        openai_client.audio.transcriptions.create(
            file=("tiny.wav", b"RIFF", "audio/wav"), model="whisper-huge"
        )

    assert too_large.value.status_code == 413
    assert too_large.value.code == "request_too_large"
    assert unknown.value.code == "model_not_found"


def test_raw_response_exposes_rate_limit_headers_that_count_down(sdk_client: Any) -> None:
    first, second = (
        sdk_client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES)
        for _ in range(2)
    )

    for raw in (first, second):
        for name in ("limit-requests", "limit-tokens", "remaining-tokens", "reset-tokens"):
            assert raw.headers[f"x-ratelimit-{name}"]
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in (first, second)]
    assert remaining[1] == remaining[0] - 1
    assert int(second.headers["x-ratelimit-remaining-tokens"]) < int(
        first.headers["x-ratelimit-remaining-tokens"]
    )
    assert second.parse().choices[0].message.role == "assistant"


def test_models_list_and_latency(fake: FakeOpenAIServer, openai_client: openai.OpenAI) -> None:
    ids = {model.id for model in openai_client.models.list()}
    fake.latency_s = 0.2
    openai_client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)

    assert {"whisper-large-v3", CHAT_MODEL} <= ids
    recorded = fake.chat_requests()[0]
    assert recorded.finished_at is not None
    assert recorded.finished_at - recorded.received_at >= 0.2
