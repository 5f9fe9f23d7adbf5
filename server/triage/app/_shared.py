"""What a gateway shares with the other instances at request time, and the process's background sampling.

Without `redis.url`, admission is this process's own token buckets and slots (`_limits`), cooldowns its own. With
it, `SharedLimits` takes over admission and `SharedCooldowns` is plugged into the upstream's `ModelHealth` (which
sees only its small protocol: `upstream` never imports `app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from triage._config import TriageConfig
from triage.app._auth import Caller
from triage.app._limits import Lease, RateLimiter, SharedLimits, StreamSlots
from triage.app._metrics import Metrics
from triage.app._redis import Shared, SharedCooldowns
from triage.learn import Store
from triage.upstream import ModelHealth

__all__ = ["Sharing"]

logger = logging.getLogger("triage")

_SAMPLE_INTERVAL = 1.0


class Sharing:
    def __init__(self, config: TriageConfig, metrics: Metrics, limiter: RateLimiter, slots: StreamSlots,
                 health: ModelHealth) -> None:
        self.metrics = metrics
        self.limiter = limiter
        self.slots = slots
        self.redis: Shared | None = None
        self.limits: SharedLimits | None = None
        self._cooldowns: SharedCooldowns | None = None
        self._health = health
        self._tasks: list[asyncio.Task[None]] = []
        if config.redis.url is not None:
            self.redis = Shared(config.redis, on_error=lambda op: metrics.redis_errors.labels(op).inc())
            self.limits = SharedLimits(self.redis, limiter, slots, config.redis.on_error)
            self._cooldowns = SharedCooldowns(self.redis, list(config.models))
            health.shared = self._cooldowns

    async def admit(self, caller: Caller) -> Lease:
        """The rate limit and a concurrency slot for one model request (RateLimited / Overloaded if not)."""
        if self.limits is not None:
            return await self.limits.admit(caller)
        self.limiter.check(caller)
        return self.slots.acquire(caller)

    async def start(self, store: Store | None) -> None:
        if self.redis is not None:
            await self.redis.start()
        if self._cooldowns is not None:
            self._tasks.append(asyncio.create_task(self._cooldowns.sync(self._health.apply_shared),
                                                   name="triage-cooldown-sync"))
        self._tasks.append(asyncio.create_task(self._sample(store), name="triage-metrics-sampler"))

    def sample(self, store: Store | None) -> None:
        self.metrics.sample(queued=store.queued if store is not None else 0,
                            dropped=store.dropped if store is not None else 0)

    async def _sample(self, store: Store | None) -> None:
        while True:
            with contextlib.suppress(Exception):  # a metric must never take the process down
                self.sample(store)
            await asyncio.sleep(_SAMPLE_INTERVAL)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.redis is not None:
            await self.redis.aclose()
