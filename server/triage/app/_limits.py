"""Per-key rate limits (token buckets, 429 with retry-after) and caps on concurrent model requests, per key and in
total (503 with retry-after). Both are checked before any work is done for a request."""

from __future__ import annotations

import time
from dataclasses import dataclass

from triage._exceptions import Overloaded, RateLimited
from triage.app._auth import Caller

__all__ = ["Lease", "RateLimiter", "StreamSlots"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: `rate_per_minute` refill, a burst of a tenth of a minute's worth (at least 1)."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def check(self, caller: Caller, now: float | None = None) -> None:
        rate = caller.rate_per_minute
        if rate is None:
            return
        now = time.monotonic() if now is None else now
        per_second = rate / 60
        burst = max(1.0, rate / 10)
        bucket = self._buckets.get(caller.key_id)
        if bucket is None:
            bucket = self._buckets[caller.key_id] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * per_second)
        bucket.updated = now
        if bucket.tokens < 1:
            raise RateLimited(
                f"rate limit of {rate:g} requests per minute reached for key {caller.key_id!r}",
                retry_after=(1 - bucket.tokens) / per_second,
            )
        bucket.tokens -= 1


class Lease:
    """One slot held by a request until `release()` (idempotent)."""

    __slots__ = ("_held", "_key", "_slots")

    def __init__(self, slots: StreamSlots, key: str) -> None:
        self._slots = slots
        self._key = key
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._release(self._key)


class StreamSlots:
    """Counts model requests in flight, per key and in total. Single event loop: no lock needed."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.active = 0
        self._per_key: dict[str, int] = {}

    def acquire(self, caller: Caller) -> Lease:
        if self.active >= self.total:
            raise Overloaded(f"Triage is at its limit of {self.total} concurrent requests; retry shortly")
        held = self._per_key.get(caller.key_id, 0)
        if caller.max_streams is not None and held >= caller.max_streams:
            raise Overloaded(f"key {caller.key_id!r} is at its limit of {caller.max_streams} concurrent requests")
        self.active += 1
        self._per_key[caller.key_id] = held + 1
        return Lease(self, caller.key_id)

    def _release(self, key: str) -> None:
        self.active -= 1
        left = self._per_key[key] - 1
        if left:
            self._per_key[key] = left
        else:
            del self._per_key[key]
