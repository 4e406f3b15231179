"""The chat-completion capability used by LLM note writers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from clinscribe.errors import ProviderPermanentError


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatResult:
    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    # "stop", or "length" when the answer was cut off at max_tokens; None if not reported.
    finish_reason: str | None = None


class ModelOutputRejected(ProviderPermanentError):
    """The endpoint itself refused the model's answer as invalid JSON (Groq answers HTTP 400
    ``json_validate_failed`` in JSON mode). Permanent for the request as sent, but a caller may
    ask again with a correction. Never carries the rejected text (it is note text: PHI)."""


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` costs, without the model's tokenizer: 4 ASCII characters per token (what
    tokenizers average on English) and 1 per other character (Tamil or Devanagari take roughly
    1-2 characters per token in Llama-3-style tokenizers, so this errs on the safe side)."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


def clip_tokens(text: str, limit: int) -> str:
    """``text`` cut short to at most ``limit`` estimated tokens."""
    while estimate_tokens(text) > limit:
        text = text[: int(len(text) * 0.9)]
    return text


class ChatModel(Protocol):
    name: str
    model: str

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        schema_name: str = "response",
        max_tokens: int = 4096,
    ) -> ChatResult: ...

    async def aclose(self) -> None: ...
