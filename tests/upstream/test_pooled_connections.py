"""Issue 8 (soak at 2,000 streams): an idle upstream connection the provider closes while Triage's event loop is
stalled (a full collection took 0.3-2 s at that load) must not be handed out again: the request on it failed, and
when the fallback model drew another such connection the client got a 5xx. The pool drops idle connections before a
5 s server would, and a request that meets one closed under it anyway is sent again on another."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from harness import gateway_config

from triage.upstream import Upstreams

BODY = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 2}


async def answer(upstreams: Upstreams) -> None:
    stream = await upstreams.open_stream("cheap", BODY)
    try:
        async for _ in stream.batches():
            pass
    finally:
        stream.close()


@pytest.mark.parametrize("keepalive", [None, 15.0], ids=["default", "aiohttp-default-15s"])
async def test_a_connection_the_provider_closed_during_a_stall_is_not_reused(
    sim_url: str, keepalive: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    provider = {"base_url": sim_url + "/v1"} | ({} if keepalive is None else {"keepalive": keepalive})
    upstreams = Upstreams(gateway_config(sim_url, providers={"sim": provider}))
    await upstreams.start()
    try:
        await answer(upstreams)  # leaves one idle connection in the pool
        await asyncio.sleep(4.5)
        # The loop stalls across the simulator's 5 s keep-alive (uvicorn's default): its close is not seen yet.
        time.sleep(1.0)  # noqa: ASYNC251  (blocking on purpose: the stall is the point)
        with caplog.at_level(logging.DEBUG, logger="triage.upstream"):
            await answer(upstreams)
    finally:
        await upstreams.aclose()
    resent = [r for r in caplog.records if "sending it again" in r.getMessage()]
    # With the default the pool has dropped the connection itself; kept 15 s, it is handed out, fails, and the
    # request goes again on a fresh connection.
    assert len(resent) == (0 if keepalive is None else 1)
