"""Per-key rate limits (token buckets, 429 with retry-after) and caps on concurrent model requests, per key and in
total (503 with retry-after). Both are checked before any work is done for a request.

By default both are this process's own. With Redis configured (`SharedLimits`), a key's token bucket and its
concurrency slots are shared by every instance (`_redis`), so one key gets its limit once, not once per instance;
the cap on requests in total stays per process (it protects the process). When Redis does not answer,
`redis.on_error` decides: `open` applies this process's own limits, `closed` refuses the requests of keys that
have a limit with a 429 and a retry-after. A Redis failure is never a 5xx.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from triage._exceptions import Overloaded, RateLimited
from triage.app._auth import Caller
from triage.app._redis import Shared

__all__ = ["Lease", "RateLimiter", "SharedLimits", "StreamSlots", "burst_of"]


def burst_of(rate_per_minute: float) -> float:
    """A tenth of a minute's worth, at least 1."""
    return max(1.0, rate_per_minute / 10)


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
        burst = burst_of(rate)
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
    """One slot held by a request until `release()` (idempotent); `then` also runs on release (a shared slot)."""

    __slots__ = ("_held", "_key", "_slots", "then")

    def __init__(self, slots: StreamSlots, key: str) -> None:
        self._slots = slots
        self._key = key
        self._held = True
        self.then: Callable[[], None] | None = None

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._release(self._key)
            if self.then is not None:
                self.then()


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


class SharedLimits:
    """Rate limits and per-key slots on Redis, this process's own as the fallback (see the module docstring)."""

    def __init__(self, shared: Shared, limiter: RateLimiter, slots: StreamSlots,
                 on_error: Literal["open", "closed"]) -> None:
        self.shared = shared
        self.limiter = limiter
        self.slots = slots
        self.on_error = on_error

    def _unavailable(self, caller: Caller) -> RateLimited:
        return RateLimited(
            f"the shared limits of key {caller.key_id!r} cannot be checked right now (redis.on_error: closed)",
            retry_after=self.shared.config.retry_interval, code="limits_unavailable",
        )

    async def admit(self, caller: Caller) -> Lease:
        rate = caller.rate_per_minute
        if rate is not None:
            wait = await self.shared.take_token(caller.key_id, rate, burst_of(rate))
            if wait is None:
                if self.on_error == "closed":
                    raise self._unavailable(caller)
                self.limiter.check(caller)
            elif wait > 0:
                raise RateLimited(f"rate limit of {rate:g} requests per minute reached for key {caller.key_id!r}",
                                  retry_after=wait)
        lease = self.slots.acquire(caller)
        if caller.max_streams is None:
            return lease
        try:
            slot = await self.shared.acquire_slot(caller.key_id, caller.max_streams)
        except BaseException:
            lease.release()
            raise
        if slot is False:
            lease.release()
            raise Overloaded(f"key {caller.key_id!r} is at its limit of {caller.max_streams} concurrent requests")
        if slot is None:
            if self.on_error == "closed":
                lease.release()
                raise self._unavailable(caller)
            return lease  # the process's own per-key cap already applied
        key_id, shared_lease = caller.key_id, slot
        lease.then = lambda: self.shared.release_slot(key_id, shared_lease)
        return lease
