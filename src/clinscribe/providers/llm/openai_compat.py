"""Chat completions through any OpenAI-compatible endpoint (Groq default, OpenAI, Ollama, vLLM).

Every request is as repeatable as the endpoint allows: temperature 0 and a fixed seed (Groq,
OpenAI, vLLM, Ollama and llama.cpp accept ``seed``; identical output is still not guaranteed).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx

from clinscribe.config import LlmSettings, RetrySettings
from clinscribe.errors import ConfigurationError, ProviderPermanentError
from clinscribe.providers.http import (
    error_for_exception,
    error_for_response,
    vendor_error_code,
    with_retries,
)
from clinscribe.providers.llm.base import ChatMessage, ChatResult, ModelOutputRejected

SEED = 7
# Models known to take {"type": "json_schema", "strict": true} (constrained decoding). Groq:
# only openai/gpt-oss-* (others answer 400 or, best-effort, may still break the schema);
# OpenAI: gpt-4o-mini, gpt-4.1 and gpt-5 families. Anything else gets json_object, the mode
# every OpenAI-compatible server has, with the schema in the prompt. Override with
# CLINSCRIBE_LLM__RESPONSE_FORMAT.
STRICT_SCHEMA_MODEL_PREFIXES: tuple[str, ...] = (
    "openai/gpt-oss-", "gpt-oss", "gpt-4o-mini", "gpt-4.1", "gpt-5",
)  # fmt: skip
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Groq's code when JSON mode or a best-effort schema catches an invalid answer.
_JSON_REJECTED = frozenset({"json_validate_failed"})


def require_api_key(settings: LlmSettings) -> None:
    """A remote endpoint needs a key; a server on this machine (Ollama, llama.cpp) may not."""
    local = urlparse(settings.base_url).hostname in _LOOPBACK_HOSTS
    if settings.api_key is None and not local:
        raise ConfigurationError(
            "The LLM note writer needs an API key: set CLINSCRIBE_LLM__API_KEY (or choose "
            "CLINSCRIBE_NOTE_PROVIDER=extractive).",
            code="missing_api_key",
        )


def uses_strict_schema(settings: LlmSettings) -> bool:
    """Whether JSON answers are asked for with a strict json_schema (else json_object)."""
    if settings.response_format != "auto":
        return settings.response_format == "json_schema"
    return settings.model.lower().startswith(STRICT_SCHEMA_MODEL_PREFIXES)


class OpenAICompatibleChat:
    name = "llm"

    def __init__(self, settings: LlmSettings, retry: RetrySettings) -> None:
        require_api_key(settings)
        self.model = settings.model
        self._strict_schema = uses_strict_schema(settings)
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
        schema_name: str = "response",
        max_tokens: int = 4096,
    ) -> ChatResult:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": 0,
            "seed": SEED,
            "max_completion_tokens": max_tokens,
        }
        if json_schema is not None and self._strict_schema:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": json_schema, "strict": True},
            }
        elif json_schema is not None:
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
            error = error_for_response(self.name, response)
            if response.status_code == 400 and vendor_error_code(response) in _JSON_REJECTED:
                # The body quotes the failed generation: it stays in the response object.
                raise ModelOutputRejected(
                    error.message, provider=self.name, code=error.code, http_status=400
                )
            raise error
        try:
            body = response.json()
            choice = body["choices"][0]
            content = choice["message"]["content"] or ""
            usage = body.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderPermanentError(
                "The chat endpoint answered without a message; check the model setting.",
                provider=self.name,
                code="provider_bad_response",
            ) from exc
        finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        return ChatResult(
            content=str(content),
            model=str(body.get("model", self.model)),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=str(finish_reason) if finish_reason else None,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
