"""Per-model health, which fallback consults: consecutive failures, cooldowns, recent time to first token.

A model that failed `server.cooldown_after_failures` times in a row is skipped for `server.cooldown_seconds`; one
that answered with a `retry-after` is skipped for that long. A success clears both.

With a `shared` backend (Redis, from the app: `triage.app._redis.SharedCooldowns`) a cooldown started here is
published to every instance, and theirs are applied here (`apply_shared`). The check on the request path stays a
local read either way; when the backend is unreachable, cooldowns are simply this process's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from triage._config import TriageConfig
from triage._exceptions import UpstreamError, UpstreamStatusError

__all__ = ["ModelHealth", "SharedHealth"]

logger = logging.getLogger("triage.upstream")

# Before a model has answered once, assume a hosted cheap model's typical time to first token.
_DEFAULT_TTFT_MS = 300.0


@dataclass(slots=True)
class _Health:
    consecutive_failures: int = 0
    cool_until: float = 0.0
    ttft_ms: float | None = None  # moving average of observed times to first token


class SharedHealth(Protocol):
    """Where cooldowns are shared between instances. Both calls return at once (the backend writes in the
    background) and never raise."""

    def cooled(self, model: str, seconds: float) -> None: ...

    def recovered(self, model: str) -> None: ...


class ModelHealth:
    def __init__(self, config: TriageConfig, shared: SharedHealth | None = None) -> None:
        self._server = config.server
        self._health: dict[str, _Health] = {name: _Health() for name in config.models}
        self.shared = shared

    def apply_shared(self, model: str, seconds: float) -> None:
        """Another instance cooled `model` down for `seconds` more."""
        health = self._health.get(model)
        if health is not None:
            health.cool_until = max(health.cool_until, time.monotonic() + seconds)

    def is_cooling(self, model: str, now: float | None = None) -> bool:
        return self._health[model].cool_until > (time.monotonic() if now is None else now)

    def record_failure(self, model: str, error: UpstreamError) -> None:
        health = self._health[model]
        health.consecutive_failures += 1
        retry_after = error.retry_after if isinstance(error, UpstreamStatusError) else None
        now = time.monotonic()
        before = health.cool_until
        if retry_after is not None:
            health.cool_until = max(health.cool_until, now + retry_after)
        if health.consecutive_failures >= self._server.cooldown_after_failures:
            health.cool_until = max(health.cool_until, now + self._server.cooldown_seconds)
            logger.warning("model %s cooling down after %d failures", model, health.consecutive_failures)
        if self.shared is not None and health.cool_until > max(before, now):
            self.shared.cooled(model, health.cool_until - now)

    def record_success(self, model: str) -> None:
        health = self._health[model]
        was_cooling = health.cool_until > 0.0
        health.consecutive_failures = 0
        health.cool_until = 0.0
        if self.shared is not None and was_cooling:
            self.shared.recovered(model)

    def record_ttft(self, model: str, ms: float) -> None:
        health = self._health[model]
        health.ttft_ms = ms if health.ttft_ms is None else 0.8 * health.ttft_ms + 0.2 * ms

    def ttft_estimate_ms(self, model: str) -> float:
        """Recent time to first token of `model` (speculation weighs it against classification time)."""
        ttft = self._health[model].ttft_ms
        return _DEFAULT_TTFT_MS if ttft is None else ttft
