"""The shared retry policy: which vendor answers are retried, how long we wait, when we give up."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from clinscribe.config import RetrySettings
from clinscribe.errors import ProviderPermanentError, ProviderTransientError
from clinscribe.providers.http import (
    backoff_delay_s,
    error_for_exception,
    error_for_response,
    parse_duration_s,
    retry_after_s,
    with_retries,
)

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py


def groq_error(
    status: int, code: str | None, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"error": {"message": "vendor text", "type": "invalid_request_error", "code": code}}
    return httpx.Response(status, json=body, headers=headers or {})


class SleepRecorder:
    """Stands in for asyncio.sleep: records each delay instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def failing(
    errors: list[Exception], result: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """A call that raises ``errors`` one per attempt, then returns ``result``; counts calls."""
    calls = [0]

    async def call() -> str:
        calls[0] += 1
        if calls[0] <= len(errors):
            raise errors[calls[0] - 1]
        return result

    return call, calls


def transient(retry_after: float | None = None) -> ProviderTransientError:
    return ProviderTransientError(
        "unavailable", provider="test", http_status=503, retry_after_s=retry_after
    )


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        (" 3 ", 3.0),
        ("2m59.56s", 179.56),
        ("7.66s", 7.66),
        ("120ms", 0.12),
        ("1h2m", 3720.0),
        ("-5", 0.0),
    ],
)
def test_parse_duration_s_reads_seconds_and_groq_durations(value: str, seconds: float) -> None:
    parsed = parse_duration_s(value)
    assert parsed is not None
    assert parsed == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_parse_duration_s_returns_none_for_what_it_cannot_read(value: str | None) -> None:
    assert parse_duration_s(value) is None


def test_parse_duration_s_rejects_infinite_values() -> None:
    parsed = parse_duration_s("inf")
    assert parsed is None or math.isfinite(parsed)


def test_retry_after_prefers_the_header_then_the_larger_rate_limit_reset() -> None:
    explicit = httpx.Response(429, headers={"retry-after": "3", "x-ratelimit-reset-tokens": "9s"})
    assert retry_after_s(explicit) == 3.0
    resets = httpx.Response(
        429, headers={"x-ratelimit-reset-requests": "2m0.5s", "x-ratelimit-reset-tokens": "7.66s"}
    )
    assert retry_after_s(resets) == pytest.approx(120.5)
    # Reset headers ride on every Groq response; only a 429 means we must wait for them.
    assert retry_after_s(httpx.Response(503, headers={"x-ratelimit-reset-tokens": "9s"})) is None


# --- classification ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "provider_rejected"),
        (401, "provider_auth_failed"),
        (403, "provider_auth_failed"),
        (404, "provider_rejected"),
        (413, "provider_request_too_large"),
        (422, "provider_rejected"),
    ],
)
def test_client_errors_are_permanent(status: int, code: str) -> None:
    error = error_for_response("groq", groq_error(status, "some_code"))
    assert isinstance(error, ProviderPermanentError)
    assert (error.code, error.http_status, error.provider) == (code, status, "groq")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (408, "provider_unavailable"),
        (409, "provider_unavailable"),
        (429, "provider_rate_limited"),
        (498, "provider_unavailable"),
        (500, "provider_unavailable"),
        (502, "provider_unavailable"),
        (503, "provider_unavailable"),
    ],
)
def test_overload_and_server_errors_are_transient(status: int, code: str) -> None:
    error = error_for_response("groq", groq_error(status, "rate_limit_exceeded"))
    assert isinstance(error, ProviderTransientError)
    assert (error.code, error.http_status) == (code, status)


def test_transient_error_carries_retry_after() -> None:
    error = error_for_response("groq", groq_error(429, "rate_limit_exceeded", {"retry-after": "4"}))
    assert isinstance(error, ProviderTransientError)
    assert error.retry_after_s == 4.0


@pytest.mark.parametrize("vendor_code", ["insufficient_quota", "insufficient_quota_error"])
def test_quota_exhaustion_is_permanent_and_distinct(vendor_code: str) -> None:
    error = error_for_response("sarvam", groq_error(429, vendor_code))
    assert isinstance(error, ProviderPermanentError)
    assert error.code == "provider_quota_exhausted"
    assert "quota" in error.message


def test_flat_vllm_error_body_and_non_json_bodies_are_classified() -> None:
    flat = httpx.Response(400, json={"object": "error", "message": "m", "code": "bad_model"})
    error = error_for_response("vllm", flat)
    assert isinstance(error, ProviderPermanentError)
    assert "bad_model" in error.message
    html = httpx.Response(502, text="<html>Bad gateway</html>")
    assert isinstance(error_for_response("vllm", html), ProviderTransientError)


def test_messages_never_copy_the_vendor_body() -> None:
    body = {"error": {"message": "Patient Jane Doe has chest pain", "code": "json_validate_failed"}}
    body["error"]["failed_generation"] = "Jane Doe, 38.2 degrees"
    error = error_for_response("llm", httpx.Response(400, json=body))
    assert "Jane" not in error.message
    assert "38.2" not in error.message
    assert "Jane" not in str(error.to_json())


def test_network_errors_are_transient() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/")
    refused = error_for_exception("groq", httpx.ConnectError("refused", request=request))
    timed_out = error_for_exception("groq", httpx.ReadTimeout("slow", request=request))
    assert (refused.code, timed_out.code) == ("provider_network", "provider_timeout")
    assert isinstance(refused, ProviderTransientError)


# --- backoff and retries -------------------------------------------------------------------


def test_backoff_stays_within_the_exponential_band_and_the_cap() -> None:
    policy = RetrySettings(max_attempts=10, base_delay_s=1.0, max_delay_s=8.0)
    for attempt in range(8):
        ceiling = min(8.0, 2.0**attempt)
        for _ in range(50):
            delay = backoff_delay_s(attempt, policy, None)
            assert ceiling / 2 <= delay <= ceiling


def test_backoff_never_undercuts_retry_after() -> None:
    policy = RetrySettings(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
    assert all(backoff_delay_s(a, policy, 2.5) >= 2.5 for a in range(5))


async def test_transient_errors_are_retried_up_to_max_attempts_then_reraised() -> None:
    policy = RetrySettings(max_attempts=4, base_delay_s=1.0, max_delay_s=60.0)
    errors: list[Exception] = [transient() for _ in range(10)]
    call, calls = failing(errors)
    sleep = SleepRecorder()
    with pytest.raises(ProviderTransientError) as raised:
        await with_retries(call, policy=policy, provider="test", sleep=sleep)
    assert raised.value is errors[3]  # the last attempt's own error, type intact
    assert calls[0] == 4
    assert len(sleep.delays) == 3


async def test_success_after_transient_errors_returns_the_result() -> None:
    policy = RetrySettings(max_attempts=4, base_delay_s=1.0, max_delay_s=60.0)
    call, calls = failing([transient(), transient()], result="transcript")
    sleep = SleepRecorder()
    assert await with_retries(call, policy=policy, provider="test", sleep=sleep) == "transcript"
    assert calls[0] == 3
    assert len(sleep.delays) == 2


async def test_retries_never_sleep_less_than_retry_after() -> None:
    policy = RetrySettings(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
    call, _ = failing([transient(retry_after=30.0), transient(retry_after=2.0)])
    sleep = SleepRecorder()
    await with_retries(call, policy=policy, provider="test", sleep=sleep)
    assert sleep.delays[0] >= 30.0
    assert sleep.delays[1] >= 2.0


async def test_permanent_errors_are_raised_at_once() -> None:
    policy = RetrySettings(max_attempts=6, base_delay_s=1.0, max_delay_s=60.0)
    error = ProviderPermanentError("bad key", provider="test", code="provider_auth_failed")
    call, calls = failing([error])
    sleep = SleepRecorder()
    with pytest.raises(ProviderPermanentError) as raised:
        await with_retries(call, policy=policy, provider="test", sleep=sleep)
    assert raised.value is error
    assert calls[0] == 1
    assert sleep.delays == []


async def test_errors_outside_the_provider_tree_are_not_retried() -> None:
    policy = RetrySettings(max_attempts=6, base_delay_s=1.0, max_delay_s=60.0)
    call, calls = failing([ValueError("a bug, not an outage")])
    with pytest.raises(ValueError):
        await with_retries(call, policy=policy, provider="test", sleep=SleepRecorder())
    assert calls[0] == 1


async def test_backoff_grows_until_the_cap() -> None:
    policy = RetrySettings(max_attempts=8, base_delay_s=1.0, max_delay_s=8.0)
    errors: list[Any] = [transient() for _ in range(7)]
    call, _ = failing(errors)
    sleep = SleepRecorder()
    await with_retries(call, policy=policy, provider="test", sleep=sleep)
    delays = sleep.delays
    assert len(delays) == 7
    # Bands [0.5, 1], [1, 2], [2, 4], [4, 8]: they touch but never overlap backwards.
    assert delays[:4] == sorted(delays[:4])
    assert delays[3] > delays[0] * 2  # it actually grew, not just stayed flat
    # From the fourth retry on, the cap holds: jitter within [max/2, max].
    assert all(policy.max_delay_s / 2 <= d <= policy.max_delay_s for d in delays[3:])
