"""Limits and cooldowns shared through a real Redis (tests/servers.py): the token bucket and the slots hold across
gateways; a cooldown started by one is applied by the other; Redis unreachable never fails a request with a 5xx,
serves on the process's own limits (`on_error: open`) or refuses with a 429 (`closed`), logs once per interval and
counts every failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Literal

import httpx
import pytest
from harness import SimControl, gateway_config, run_triage
from servers import free_port

from triage._config import RedisConfig
from triage._exceptions import Overloaded, RateLimited, UpstreamStatusError
from triage.app import hash_key
from triage.app._auth import Caller
from triage.app._limits import RateLimiter, SharedLimits, StreamSlots
from triage.app._redis import Shared, SharedCooldowns
from triage.upstream import ModelHealth

KEY = "tk-limited-0123456789"


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Shared, Shared]]:
    """Two processes' worth of clients on one Redis."""
    a, b = Shared(RedisConfig(url=redis_url)), Shared(RedisConfig(url=redis_url))
    await a.start()
    await b.start()
    yield a, b
    await a.aclose()
    await b.aclose()


def limits(shared: Shared, on_error: Literal["open", "closed"] = "open") -> SharedLimits:
    return SharedLimits(shared, RateLimiter(), StreamSlots(100), on_error)


async def test_one_token_bucket_for_a_key_across_gateways(pair: tuple[Shared, Shared]) -> None:
    caller = Caller("k1", "client", rate_per_minute=60)  # a burst of 6
    gateways = [limits(pair[0]), limits(pair[1])]
    allowed = 0
    for i in range(12):
        try:
            lease = await gateways[i % 2].admit(caller)
        except RateLimited as exc:
            assert 0 < exc.retry_after <= 1.0
        else:
            lease.release()
            allowed += 1
    assert allowed == 6


async def test_concurrency_slots_are_shared_and_released(pair: tuple[Shared, Shared]) -> None:
    caller = Caller("k2", "client", max_streams=2)
    a, b = limits(pair[0]), limits(pair[1])
    first, second = await a.admit(caller), await b.admit(caller)
    with pytest.raises(Overloaded):
        await a.admit(caller)
    first.release()
    for _ in range(50):  # the release is written in the background
        try:
            third = await b.admit(caller)
            break
        except Overloaded:
            await asyncio.sleep(0.01)
    else:
        raise AssertionError("the released slot never came back")
    second.release()
    third.release()


async def test_a_cooldown_on_one_gateway_is_applied_on_the_other(pair: tuple[Shared, Shared]) -> None:
    config = gateway_config("http://127.0.0.1:9")
    here, there = ModelHealth(config), ModelHealth(config)
    here.shared = SharedCooldowns(pair[0], list(config.models), interval=0.05)
    there_sync = SharedCooldowns(pair[1], list(config.models), interval=0.05)
    task = asyncio.create_task(there_sync.sync(there.apply_shared))
    try:
        here.record_failure("cheap", UpstreamStatusError("busy", status=429, model="cheap", retry_after=5))
        assert here.is_cooling("cheap")
        for _ in range(100):
            if there.is_cooling("cheap"):
                break
            await asyncio.sleep(0.02)
        assert there.is_cooling("cheap") and not there.is_cooling("strong")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_unreachable_redis_fails_open_on_the_processes_own_limits(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[str] = []
    dead = Shared(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, retry_interval=0.05,
                              log_interval=60), on_error=errors.append)
    gateway = limits(dead, "open")
    caller = Caller("k3", "client", rate_per_minute=60)
    with caplog.at_level(logging.ERROR, logger="triage.redis"):
        allowed = 0
        for _ in range(10):
            try:
                (await gateway.admit(caller)).release()
                allowed += 1
            except RateLimited:
                pass
            await asyncio.sleep(0.06)  # past retry_interval: Redis is asked again each time
    assert allowed == 6  # the local bucket: still limited, never unlimited and never a 5xx
    assert len(errors) >= 5  # every failure counted
    logged = [r for r in caplog.records if r.name == "triage.redis"]
    assert len(logged) == 1 and "once per 60 s" in logged[0].getMessage()
    await dead.aclose()


async def test_unreachable_redis_fails_closed_with_a_429() -> None:
    dead = Shared(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, on_error="closed"))
    gateway = limits(dead, "closed")
    with pytest.raises(RateLimited) as caught:
        await gateway.admit(Caller("k4", "client", max_streams=3))
    assert caught.value.code == "limits_unavailable" and caught.value.status_code == 429
    unlimited = await gateway.admit(Caller("k5", "client"))  # a key without limits needs no Redis
    unlimited.release()
    await dead.aclose()


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_redis_down_is_never_a_5xx_through_the_gateway(sim_control: SimControl, on_error: str) -> None:
    config = gateway_config(
        sim_control.url,
        redis={"url": f"redis://127.0.0.1:{free_port()}/0", "timeout": 0.2, "on_error": on_error},
        auth={"keys": [{"id": "app", "sha256": hash_key(KEY), "rate_per_minute": 600, "max_streams": 4}]},
    )
    with run_triage(config) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            responses = [await http.post("/v1/chat/completions", json=body,
                                         headers={"authorization": f"Bearer {KEY}"}) for _ in range(5)]
            metrics = (await http.get("/metrics")).text
    statuses = {r.status_code for r in responses}
    assert statuses == ({200} if on_error == "open" else {429})
    assert all(r.status_code < 500 for r in responses)
    if on_error == "closed":
        assert responses[0].json()["error"]["code"] == "limits_unavailable"
        assert "retry-after" in responses[0].headers
    assert 'triage_redis_errors_total{op=' in metrics
