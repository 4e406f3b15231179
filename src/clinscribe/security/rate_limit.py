"""In-process rate limiting: a token bucket per key (a client address, an account).

The limiter lives in one process and is used from one event loop, so it needs no locks; with
several worker processes each enforces its own share of the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_at: float


class RateLimiter:
    """Allows `burst` requests at once per key, refilled continuously at `per_minute` a minute.

    At most `max_keys` buckets are kept. When a new key goes past that, the limiter shrinks to
    90% of `max_keys`: full buckets go first (a full bucket is indistinguishable from a fresh
    one, so forgetting it changes nothing), then the least recently used. Shrinking below the
    cap means the O(n) sweep runs once every `max_keys // 10` new keys rather than on every
    request of a flood from distinct keys.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self._rate_per_s = per_minute / 60
        self._burst = float(per_minute if burst is None else burst)
        self._clock = clock
        self._max_keys = max_keys
        self._low_water = max_keys - max_keys // 10
        # Insertion order doubles as recency order: every use moves a key to the end.
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        """The number of keys currently tracked."""
        return len(self._buckets)

    def acquire(self, key: str) -> float | None:
        """Take a token for `key`: None if allowed, else seconds until a token is available."""
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        is_new = bucket is None
        if bucket is None:
            bucket = _Bucket(tokens=self._burst, updated_at=now)
        else:
            bucket.tokens = self._tokens_at(bucket, now)
            bucket.updated_at = now
        self._buckets[key] = bucket

        if bucket.tokens >= 1:
            bucket.tokens -= 1
            retry_after = None
        else:
            retry_after = (1 - bucket.tokens) / self._rate_per_s
        # Pruning after taking the token: this bucket is now below full, so the sweep keeps it.
        if is_new and len(self._buckets) > self._max_keys:
            self._prune(now)
        return retry_after

    def reset(self, key: str) -> None:
        """Forget `key`, giving it a full bucket again (e.g. after a successful login)."""
        self._buckets.pop(key, None)

    def _tokens_at(self, bucket: _Bucket, now: float) -> float:
        elapsed = max(0.0, now - bucket.updated_at)
        return min(self._burst, bucket.tokens + elapsed * self._rate_per_s)

    def _prune(self, now: float) -> None:
        full = [key for key, b in self._buckets.items() if self._tokens_at(b, now) >= self._burst]
        for key in full:
            del self._buckets[key]
        excess = len(self._buckets) - self._low_water
        if excess > 0:
            for key in list(self._buckets)[:excess]:
                del self._buckets[key]
