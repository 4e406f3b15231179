from __future__ import annotations

import json

import pytest

from clinscribe.errors import RateLimited
from clinscribe.security.rate_limit import RateLimiter

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=6, burst=3, clock=clock)  # one token every 10 s

    assert [limiter.acquire("ip") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("ip") == pytest.approx(10.0)
    clock.now += 4
    assert limiter.acquire("ip") == pytest.approx(6.0)


def test_burst_defaults_to_per_minute() -> None:
    limiter = RateLimiter(per_minute=5, clock=FakeClock())
    results = [limiter.acquire("ip") for _ in range(6)]
    assert results[:5] == [None] * 5
    assert results[5] is not None and results[5] > 0


def test_tokens_refill_continuously_up_to_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)  # one token a second
    assert limiter.acquire("ip") is None
    assert limiter.acquire("ip") is None
    assert limiter.acquire("ip") is not None

    clock.now += 1.0
    assert limiter.acquire("ip") is None
    assert limiter.acquire("ip") == pytest.approx(1.0)

    clock.now += 3600  # a long idle period refills to burst, not beyond
    assert [limiter.acquire("ip") for _ in range(3)][:2] == [None, None]
    assert limiter.acquire("ip") is not None


def test_refused_requests_do_not_consume_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    assert limiter.acquire("ip") is None
    for _ in range(100):
        assert limiter.acquire("ip") is not None
    clock.now += 1.0
    assert limiter.acquire("ip") is None


def test_keys_are_independent_and_reset_refills() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=FakeClock())
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None
    assert limiter.acquire("b") is None
    limiter.reset("a")
    assert limiter.acquire("a") is None
    assert limiter.acquire("b") is not None


def test_memory_stays_bounded_with_many_keys() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=5, clock=clock, max_keys=1000)
    for i in range(20_000):
        assert limiter.acquire(f"client-{i}") is None
        assert len(limiter) <= 1000
        clock.now += 0.001
    # The newest key survived every prune and still has its state.
    assert [limiter.acquire("client-19999") for _ in range(4)][:3] == [None] * 3
    assert limiter.acquire("client-19999") is not None


def test_full_buckets_are_dropped_before_older_busy_ones() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock, max_keys=2)  # 1 token/s
    for _ in range(3):
        assert limiter.acquire("busy") is None  # empty now; full again only after 3 s
    clock.now += 1
    assert limiter.acquire("idle") is None  # full again after 1 s
    clock.now += 1.5  # busy: 2.5 tokens (not full, and older); idle: full

    assert limiter.acquire("newcomer") is None
    assert len(limiter) == 2
    # "busy" kept its 2.5 tokens: two more requests, then a wait of half a second.
    assert limiter.acquire("busy") is None
    assert limiter.acquire("busy") is None
    assert limiter.acquire("busy") == pytest.approx(0.5)


def test_least_recently_used_goes_when_no_bucket_is_full() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=1, burst=1, clock=clock, max_keys=2)
    assert limiter.acquire("first") is None
    assert limiter.acquire("second") is None
    assert limiter.acquire("first") is not None  # touching "first" makes "second" the oldest
    assert limiter.acquire("third") is None
    assert len(limiter) == 2
    assert limiter.acquire("first") is not None  # still remembered, still limited
    assert limiter.acquire("second") is None  # forgotten, so a fresh bucket


@pytest.mark.parametrize(
    ("per_minute", "burst", "max_keys"), [(0, None, 10), (5, 0, 10), (5, None, 0)]
)
def test_nonsense_configuration_is_refused(
    per_minute: int, burst: int | None, max_keys: int
) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        RateLimiter(per_minute, burst=burst, max_keys=max_keys)


def test_too_many_requests_response() -> None:
    """The 429 the service answers with (RateLimited through the app's error handler)."""
    error = RateLimited("Too many sign-in attempts; wait a few seconds.", retry_after_s=2.1)
    assert error.status_code == 429
    assert error.headers()["Retry-After"] == "3"
    assert json.loads(json.dumps(error.to_json())) == {
        "error": {
            "code": "rate_limited",
            "message": "Too many sign-in attempts; wait a few seconds.",
        }
    }
    assert RateLimited("x", retry_after_s=0.01).headers()["Retry-After"] == "1"
