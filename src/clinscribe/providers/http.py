"""Shared HTTP behaviour for vendor adapters: error classification and retries.

Policy (providers.md): network errors, timeouts, 408, 409, 429, 5xx and 498 are transient and
retried with exponential backoff and jitter, never sooner than the vendor's ``retry-after``.
400, 401, 403, 404, 413 and 422 are permanent: the step fails at once.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import structlog

from clinscribe import metrics
from clinscribe.config import RetrySettings
from clinscribe.errors import ProviderError, ProviderPermanentError, ProviderTransientError

log = structlog.get_logger(__name__)
T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 498, 499})
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration_s(value: str | None) -> float | None:
    """Parse `retry-after` seconds ("7", "1.5") or Groq reset durations ("2m59.56s", "120ms")."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    parts = _DURATION_PART.findall(value)
    if not parts:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def retry_after_s(response: httpx.Response) -> float | None:
    """How long the vendor asks us to wait: retry-after, else the relevant rate-limit reset."""
    explicit = parse_duration_s(response.headers.get("retry-after"))
    if explicit is not None:
        return explicit
    if response.status_code == 429:
        resets = [
            parse_duration_s(response.headers.get(name))
            for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        ]
        known = [r for r in resets if r is not None]
        return max(known) if known else None
    return None


def vendor_error_code(response: httpx.Response) -> str | None:
    """The vendor's machine code from `{"error": {"code"|"type"}}` or a flat vLLM body."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return str(code) if code else None
    return None


def error_for_response(provider: str, response: httpx.Response) -> ProviderError:
    """Translate a failed HTTP response into our error tree. Never copies the body into messages."""
    status = response.status_code
    vendor_code = vendor_error_code(response)
    wait = retry_after_s(response)
    if status == 429 or status in TRANSIENT_STATUSES or status >= 500:
        if status == 429 and vendor_code in {"insufficient_quota", "insufficient_quota_error"}:
            return ProviderPermanentError(
                f"The {provider} account has run out of quota. Top up the account or switch "
                "provider, then retry the consultation.",
                provider=provider,
                code="provider_quota_exhausted",
                http_status=status,
            )
        return ProviderTransientError(
            f"The {provider} service is unavailable or rate-limited (HTTP {status}). It will be "
            "retried automatically.",
            provider=provider,
            code="provider_rate_limited" if status == 429 else "provider_unavailable",
            http_status=status,
            retry_after_s=wait,
        )
    if status in (401, 403):
        return ProviderPermanentError(
            f"The {provider} service rejected our credentials (HTTP {status}). Check the API key "
            "setting for this provider, then retry the consultation.",
            provider=provider,
            code="provider_auth_failed",
            http_status=status,
        )
    if status == 413:
        return ProviderPermanentError(
            f"The audio sent to {provider} is larger than it accepts (HTTP 413).",
            provider=provider,
            code="provider_request_too_large",
            http_status=status,
        )
    return ProviderPermanentError(
        f"The {provider} service refused the request (HTTP {status}"
        + (f", {vendor_code}" if vendor_code else "")
        + "). Check the provider settings (model name, language), then retry.",
        provider=provider,
        code="provider_rejected",
        http_status=status,
    )


def error_for_exception(provider: str, exc: httpx.HTTPError) -> ProviderTransientError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
    return ProviderTransientError(
        f"The {provider} service {kind}. It will be retried automatically.",
        provider=provider,
        code="provider_timeout" if isinstance(exc, httpx.TimeoutException) else "provider_network",
    )


def backoff_delay_s(attempt: int, policy: RetrySettings, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never shorter than the vendor's retry-after."""
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2**attempt))
    delay = random.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetrySettings,
    provider: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``call``; retry ProviderTransientError up to ``policy.max_attempts`` in total."""
    for attempt in range(policy.max_attempts):
        try:
            return await call()
        except ProviderTransientError as exc:
            if attempt + 1 >= policy.max_attempts:
                raise
            if exc.retry_after_s is not None and exc.retry_after_s > policy.max_retry_after_s:
                # A quota window of hours: fail the step (retryable) rather than hold a
                # worker slot asleep; the consultation can be retried once the window passes.
                raise
            delay = backoff_delay_s(attempt, policy, exc.retry_after_s)
            metrics.PROVIDER_RETRIES.labels(provider, metrics.retry_reason(exc)).inc()
            log.warning(
                "provider call will be retried",
                provider=provider,
                attempt=attempt + 1,
                max_attempts=policy.max_attempts,
                error_code=exc.code,
                http_status=exc.http_status,
                delay_s=round(delay, 2),
            )
            await sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
