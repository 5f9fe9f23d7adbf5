"""Redis (or Valkey) for what instances share at request time: token buckets, concurrency slots, model cooldowns.

Every operation is one atomic Lua script or one command, bounded by `redis.timeout`. When one fails (Redis down,
slow, refusing), `Shared` stops asking for `redis.retry_interval` seconds, so an outage costs at most one timeout per
interval rather than one per request; the callers then fall back (`_limits`: per `redis.on_error`; cooldowns: the
process's own). Failures are counted in `triage_redis_errors_total` and logged once per `redis.log_interval`.
Nothing here raises to a request: every method returns None for "Redis did not answer".

    {prefix}:bucket:{key_id}     hash {tokens, at_ms}: the key's token bucket, refilled by Redis's own clock
    {prefix}:slots:{key_id}      sorted set lease -> expiry (ms): the key's requests in flight on every instance
    {prefix}:cool:{model}        string, with a TTL: the model is cooling down everywhere until it expires
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from triage._config import RedisConfig

__all__ = ["Shared", "SharedCooldowns"]

logger = logging.getLogger("triage.redis")

T = TypeVar("T")

# KEYS[1] bucket; ARGV: refill per ms, burst. Redis's clock (TIME), not the instances': they may disagree.
# Returns {1, 0} when a token was taken, else {0, ms until one is there}.
_TOKEN_BUCKET = """
local per_ms, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * per_ms)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens, allowed = tokens - 1, 1
else
  wait = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms) + 1000)
return {allowed, wait}
"""

# KEYS[1] slots; ARGV: lease, limit, ttl ms. Leases of instances that died expire after the TTL.
_ACQUIRE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS: slot sets; ARGV: ttl ms, then one lease per key. Keeps live leases of long streams from expiring.
_RENEW_SLOTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return #KEYS
"""


class Shared:
    """The client for one process, with its failure bookkeeping. `on_error(op)` counts a failure (a metric)."""

    def __init__(self, config: RedisConfig, *, on_error: Callable[[str], None] | None = None) -> None:
        assert config.url is not None
        self.config = config
        password = config.password()
        url = config.url.replace("valkey", "redis", 1) if config.url.startswith("valkey") else config.url
        self._client = aioredis.Redis.from_url(
            url, password=password.get_secret_value() if password is not None else None,
            socket_timeout=config.timeout, socket_connect_timeout=config.timeout,
            retry=None, health_check_interval=0, decode_responses=False,
        )
        self._bucket = self._client.register_script(_TOKEN_BUCKET)
        self._acquire = self._client.register_script(_ACQUIRE_SLOT)
        self._renew = self._client.register_script(_RENEW_SLOTS)
        self._on_error = on_error
        self._down_until = 0.0
        self._logged_at = -float("inf")
        self.failures = 0
        self.instance = uuid.uuid4().hex[:12]
        self._leases: dict[str, tuple[str, str]] = {}  # lease -> (slot set, lease): renewed while held
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None

    def key(self, kind: str, name: str) -> str:
        return f"{self.config.prefix}:{kind}:{name}"

    @property
    def available(self) -> bool:
        """False during `retry_interval` after a failure: callers use their fallback without waiting."""
        return time.monotonic() >= self._down_until

    async def _call(self, op: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        if not self.available:
            return None
        try:
            async with asyncio.timeout(self.config.timeout):
                result = await fn()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(op, exc)
            return None
        if self._down_until:
            self._down_until = 0.0
            logger.warning("redis: reachable again; shared limits and cooldowns back in force")
        return result

    def _failed(self, op: str, exc: BaseException) -> None:
        self.failures += 1
        self._down_until = time.monotonic() + self.config.retry_interval
        if self._on_error is not None:
            self._on_error(op)
        now = time.monotonic()
        if now - self._logged_at >= self.config.log_interval:
            self._logged_at = now
            fallback = ("each process applies its own limits" if self.config.on_error == "open"
                        else "requests of keys with limits are refused (429)")
            logger.error("redis: %s failed (%s: %s); %s, cooldowns stay local. Logged once per %g s "
                         "(triage_redis_errors_total counts each)", op, type(exc).__name__, _first_line(exc),
                         fallback, self.config.log_interval)

    def _background(self, op: str, fn: Callable[[], Awaitable[Any]]) -> None:
        """Fire and forget (a release, a cooldown): the request does not wait; a failure only counts."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._call(op, fn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- token buckets --------------------------------------------------------------------------------------

    async def take_token(self, key_id: str, rate_per_minute: float, burst: float) -> float | None:
        """0.0 when a token was taken, else seconds until one is there; None: Redis did not answer."""
        per_ms = rate_per_minute / 60_000

        async def take() -> Any:
            return await self._bucket(keys=[self.key("bucket", key_id)], args=[repr(per_ms), repr(burst)])

        result = await self._call("rate_limit", take)
        if result is None:
            return None
        allowed, wait_ms = int(result[0]), int(result[1])
        return 0.0 if allowed else wait_ms / 1000

    # -- concurrency slots ----------------------------------------------------------------------------------

    async def acquire_slot(self, key_id: str, limit: int) -> str | Literal[False] | None:
        """A lease id when a slot was free, False when the key is at its limit, None: Redis did not answer."""
        lease = f"{self.instance}:{uuid.uuid4().hex[:12]}"
        slots = self.key("slots", key_id)
        ttl = int(self.config.slot_ttl * 1000)

        async def acquire() -> Any:
            return await self._acquire(keys=[slots], args=[lease, limit, ttl])

        result = await self._call("acquire_slot", acquire)
        if result is None:
            return None
        if not int(result):
            return False
        self._leases[lease] = (slots, lease)
        return lease

    def release_slot(self, key_id: str, lease: str) -> None:
        self._leases.pop(lease, None)
        slots = self.key("slots", key_id)
        self._background("release_slot", lambda: self._client.zrem(slots, lease))

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.slot_ttl / 3)
            held = list(self._leases.values())
            if not held:
                continue
            keys = [k for k, _ in held]
            args: list[Any] = [int(self.config.slot_ttl * 1000), *(lease for _, lease in held)]

            async def renew(keys: list[str] = keys, args: list[Any] = args) -> Any:
                return await self._renew(keys=keys, args=args)

            await self._call("renew_slots", renew)

    # -- cooldowns ------------------------------------------------------------------------------------------

    def publish_cooldown(self, model: str, seconds: float) -> None:
        ms = max(1, int(seconds * 1000))
        self._background("cooldown", lambda: self._client.set(self.key("cool", model), b"1", px=ms))

    def clear_cooldown(self, model: str) -> None:
        self._background("cooldown", lambda: self._client.delete(self.key("cool", model)))

    async def cooldowns(self, models: Sequence[str]) -> dict[str, float] | None:
        """Seconds left of each model's shared cooldown (models not cooling are left out); None: no answer."""

        async def read() -> Any:
            pipe = self._client.pipeline(transaction=False)
            for model in models:
                pipe.pttl(self.key("cool", model))
            return await pipe.execute()

        result = await self._call("cooldown_sync", read)
        if result is None:
            return None
        return {m: ms / 1000 for m, ms in zip(models, result, strict=True) if int(ms) > 0}

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_loop(), name="triage-redis-renew")
            await self._call("connect", self._client.ping)  # an outage at start is logged now, not at first use

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.config.timeout * 2)
        await self._client.aclose()


class SharedCooldowns:
    """`upstream.ModelHealth`'s shared backend on Redis: a cooldown started here is published; every instance's
    cooldowns are read back every `interval` seconds and applied to this process's health."""

    def __init__(self, shared: Shared, models: Sequence[str], *, interval: float = 0.5) -> None:
        self.shared = shared
        self.models = list(models)
        self.interval = interval

    def cooled(self, model: str, seconds: float) -> None:
        self.shared.publish_cooldown(model, seconds)

    def recovered(self, model: str) -> None:
        self.shared.clear_cooldown(model)

    async def sync(self, apply: Callable[[str, float], None]) -> None:
        """Forever: apply each shared cooldown's remaining seconds (`apply(model, seconds)`)."""
        while True:
            cooling = await self.shared.cooldowns(self.models)
            for model, seconds in (cooling or {}).items():
                apply(model, seconds)
            await asyncio.sleep(self.interval)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]
