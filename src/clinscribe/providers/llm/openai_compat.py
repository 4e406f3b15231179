"""Chat completions through any OpenAI-compatible endpoint (Groq default, OpenAI, Ollama, vLLM)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx

from clinscribe.config import LlmSettings, RetrySettings
from clinscribe.errors import ConfigurationError, ProviderPermanentError
from clinscribe.providers.http import error_for_exception, error_for_response, with_retries
from clinscribe.providers.llm.base import ChatMessage, ChatResult


class OpenAICompatibleChat:
    name = "llm"

    def __init__(self, settings: LlmSettings, retry: RetrySettings) -> None:
        local = urlparse(settings.base_url).hostname in {"127.0.0.1", "localhost", "::1"}
        if settings.api_key is None and not local:
            raise ConfigurationError(
                "The LLM note writer needs an API key: set CLINSCRIBE_LLM__API_KEY (or choose "
                "CLINSCRIBE_NOTE_PROVIDER=extractive).",
                code="missing_api_key",
            )
        self.model = settings.model
        self._retry = retry
        headers = {}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
        )

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 4096,
    ) -> ChatResult:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": 0,
            "max_completion_tokens": max_tokens,
        }
        if json_schema is not None:
            # json_object is the widest-supported mode (Groq, vLLM, llama.cpp, Ollama); the
            # schema travels in the prompt and the caller validates the answer.
            request["response_format"] = {"type": "json_object"}
        return await with_retries(
            lambda: self._post(request), policy=self._retry, provider=self.name
        )

    async def _post(self, request: dict[str, Any]) -> ChatResult:
        try:
            response = await self._client.post("chat/completions", json=request)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        if response.status_code >= 400:
            raise error_for_response(self.name, response)
        try:
            body = response.json()
            content = body["choices"][0]["message"]["content"] or ""
            usage = body.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderPermanentError(
                "The chat endpoint answered without a message; check the model setting.",
                provider=self.name,
                code="provider_bad_response",
            ) from exc
        return ChatResult(
            content=str(content),
            model=str(body.get("model", self.model)),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
