"""The OpenAI-compatible chat adapter (LLM note writer) against the fake on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from clinscribe.config import LlmSettings, RetrySettings
from clinscribe.errors import ConfigurationError, ProviderError, ProviderPermanentError
from clinscribe.providers.llm.base import ChatMessage
from clinscribe.providers.llm.openai_compat import OpenAICompatibleChat
from tests.fakes.openai_compat import FakeFault, FakeOpenAIServer

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

API_KEY = "gsk_test_key"
FAST_RETRY = RetrySettings(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)
NOTE = json.dumps({"subjective": "Cough for a week, fever 38.2 degrees."})
MESSAGES = [
    ChatMessage(role="system", content="You write clinical notes as JSON."),
    ChatMessage(role="user", content="Patient has had a cough for one week."),
]
SCHEMA = {"type": "object", "properties": {"subjective": {"type": "string"}}}


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=API_KEY) as server:
        server.chat = lambda payload: NOTE
        yield server


@pytest.fixture
async def chat(fake: FakeOpenAIServer) -> AsyncIterator[OpenAICompatibleChat]:
    adapter = OpenAICompatibleChat(
        LlmSettings(base_url=fake.base_url, api_key=SecretStr(API_KEY)), FAST_RETRY
    )
    yield adapter
    await adapter.aclose()


async def test_content_and_usage_are_parsed(
    fake: FakeOpenAIServer, chat: OpenAICompatibleChat
) -> None:
    result = await chat.complete(MESSAGES, max_tokens=512)
    assert result.content == NOTE
    assert result.model == "llama-3.3-70b-versatile"
    assert result.prompt_tokens > 0
    assert result.completion_tokens > 0
    (request,) = fake.chat_requests()
    assert request.json is not None
    assert request.json["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]
    assert request.json["max_completion_tokens"] == 512
    assert "response_format" not in request.json


async def test_json_schema_asks_for_json_object(
    fake: FakeOpenAIServer, chat: OpenAICompatibleChat
) -> None:
    await chat.complete(MESSAGES, json_schema=SCHEMA)
    (request,) = fake.chat_requests()
    assert request.json is not None
    assert request.json["response_format"] == {"type": "json_object"}


async def test_429_then_ok_is_retried(fake: FakeOpenAIServer, chat: OpenAICompatibleChat) -> None:
    fake.faults.append(FakeFault.rate_limited(0.2))
    result = await chat.complete(MESSAGES)
    assert result.content == NOTE
    first, second = fake.chat_requests()
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.2


async def test_failed_generation_never_reaches_the_message(
    fake: FakeOpenAIServer, chat: OpenAICompatibleChat
) -> None:
    # Groq's json_validate_failed returns what the model generated: that is note text (PHI).
    error: dict[str, Any] = {
        "message": "Failed to generate JSON. Please adjust your prompt.",
        "type": "invalid_request_error",
        "code": "json_validate_failed",
        "failed_generation": NOTE,
    }
    fake.faults.append(FakeFault(400, {"error": error}))
    with pytest.raises(ProviderPermanentError) as raised:
        await chat.complete(MESSAGES, json_schema=SCHEMA)
    assert raised.value.code == "provider_rejected"
    assert "json_validate_failed" in raised.value.message
    assert "38.2" not in str(raised.value)
    assert "Cough" not in json.dumps(raised.value.to_json())
    assert len(fake.chat_requests()) == 1


async def test_a_200_that_is_not_json_is_a_provider_error(
    fake: FakeOpenAIServer, chat: OpenAICompatibleChat
) -> None:
    fake.faults.append(FakeFault(200, None, {"content-type": "text/html"}))
    with pytest.raises(ProviderError):
        await chat.complete(MESSAGES)


async def test_wrong_key_fails_at_once(fake: FakeOpenAIServer) -> None:
    adapter = OpenAICompatibleChat(
        LlmSettings(base_url=fake.base_url, api_key=SecretStr("gsk_wrong")), FAST_RETRY
    )
    try:
        with pytest.raises(ProviderPermanentError) as raised:
            await adapter.complete(MESSAGES)
    finally:
        await adapter.aclose()
    assert raised.value.code == "provider_auth_failed"
    assert len(fake.chat_requests()) == 1


def test_missing_key_for_a_remote_endpoint_names_the_setting() -> None:
    with pytest.raises(ConfigurationError) as raised:
        OpenAICompatibleChat(LlmSettings(), FAST_RETRY)
    assert raised.value.code == "missing_api_key"
    assert "CLINSCRIBE_LLM__API_KEY" in raised.value.message


async def test_a_keyless_loopback_server_needs_no_key() -> None:
    with FakeOpenAIServer() as server:
        adapter = OpenAICompatibleChat(LlmSettings(base_url=server.base_url), FAST_RETRY)
        try:
            result = await adapter.complete(MESSAGES)
        finally:
            await adapter.aclose()
        (request,) = server.chat_requests()
    assert "authorization" not in request.headers
    assert result.content.startswith("{")
