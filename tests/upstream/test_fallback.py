"""Upstream faults before and after the first token, seen through the official openai client."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
from harness import SimControl, gateway_config, run_triage

from triage.sim import BackgroundServer

USER = [{"role": "user", "content": "What is the capital of France?"}]


async def raw_events(url: str, body: dict[str, object]) -> tuple[int, list[str]]:
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("POST", url + "/v1/chat/completions", json=body) as response:
            return response.status_code, [line async for line in response.aiter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
@pytest.mark.parametrize("stream", [True, False])
async def test_error_status_before_first_token_falls_back(
    client: openai.AsyncOpenAI, sim_control: SimControl, status: int, stream: bool
) -> None:
    sim_control.behave("cheap", status=status)
    raw = await client.chat.completions.with_raw_response.create(model="auto", messages=USER, stream=stream)
    assert raw.headers["x-triage-model"] == "backup"
    if stream:
        chunks = [chunk async for chunk in raw.parse()]  # type: ignore[union-attr]
        assert {c.model for c in chunks} == {"backup"}
    else:
        assert raw.parse().model == "backup"  # type: ignore[union-attr]


async def test_a_model_that_keeps_failing_cools_down(client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave("cheap", status=500)
    for _ in range(2):  # cooldown_after_failures = 2
        await client.chat.completions.create(model="auto", messages=USER)
    assert sim_control.requests_to("cheap") == 2
    completion = await client.chat.completions.create(model="auto", messages=USER)
    assert completion.model == "backup"
    assert sim_control.requests_to("cheap") == 2  # skipped while cooling


async def test_retry_after_cools_the_model_at_once(client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave("cheap", status=429, retry_after=60)
    assert (await client.chat.completions.create(model="auto", messages=USER)).model == "backup"
    assert (await client.chat.completions.create(model="auto", messages=USER)).model == "backup"
    assert sim_control.requests_to("cheap") == 1


async def test_last_model_is_retried_after_a_short_retry_after(
    client: openai.AsyncOpenAI, sim_control: SimControl
) -> None:
    sim_control.behave("backup", status=429, retry_after=0.2, fail_first=1)
    started = time.monotonic()
    completion = await client.chat.completions.create(model="backup", messages=USER)
    assert completion.model == "backup"
    assert time.monotonic() - started >= 0.2
    assert sim_control.requests_to("backup") == 2


async def test_timeout_to_first_token_falls_back(client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave("cheap", ttft_ms=5000)  # first_token timeout is 2 s
    completion = await client.chat.completions.create(model="auto", messages=USER, stream=False)
    assert completion.model == "backup"


async def test_connect_refused_falls_back(sim_control: SimControl) -> None:
    config = gateway_config(sim_control.url, routes={"simple": {"models": ["offline", "cheap"]}})
    with run_triage(config) as server:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as client:
            stream = await client.chat.completions.create(model="auto", messages=USER, stream=True)
            assert {chunk.model async for chunk in stream} == {"cheap"}


async def test_all_models_failing_is_a_502_in_openai_shape(
    client: openai.AsyncOpenAI, sim_control: SimControl
) -> None:
    sim_control.behave("cheap", status=503)
    sim_control.behave("backup", status=500)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="auto", messages=USER, stream=True)
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict) and error["type"] == "upstream_error" and error["code"] == "all_models_failed"
    assert "cheap" in error["message"] and "backup" in error["message"]


async def test_all_models_timing_out_is_a_504(client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave("strong", ttft_ms=5000)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="strong", messages=USER)
    assert caught.value.status_code == 504


async def test_client_error_from_upstream_is_not_retried(client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave("cheap", status=400)
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="auto", messages=USER)
    assert sim_control.requests_to("backup") == 0


@pytest.mark.parametrize(
    "fault",
    [{"cut_after": 3}, {"malformed_after": 3}, {"stall_after": 3, "stall_s": 10}],
    ids=["cut", "malformed", "stall"],
)
async def test_failure_after_first_token_is_an_explicit_error_without_done(
    triage: BackgroundServer, client: openai.AsyncOpenAI, sim_control: SimControl, fault: dict[str, object]
) -> None:
    sim_control.behave("cheap", **fault)
    status, events = await raw_events(triage.url, {"model": "auto", "messages": USER, "stream": True})
    assert status == 200
    assert events[-1] != "data: [DONE]"
    assert events[-1].startswith('data: {"error":')
    assert sum('"content"' in e for e in events) >= 3
    # The official client raises instead of returning a cut answer as if whole.
    stream = await client.chat.completions.create(model="auto", messages=USER, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    assert sim_control.requests_to("backup") == 0  # no fallback after the first token


async def test_client_disconnect_cancels_the_upstream(triage: BackgroundServer, sim_control: SimControl) -> None:
    sim_control.behave("cheap", tokens_per_s=20, completion_tokens=400)
    async with httpx.AsyncClient(timeout=10) as http, http.stream("POST", triage.url + "/v1/chat/completions",
                           json={"model": "auto", "messages": USER, "stream": True}) as response:
        async for line in response.aiter_lines():
            if '"content"' in line:
                break
    for _ in range(100):
        if sim_control.stats()["cancelled"] == 1:
            break
        await asyncio.sleep(0.02)
    stats = sim_control.stats()
    assert stats["cancelled"] == 1 and stats["active"] == 0


async def test_disconnect_before_the_first_token_cancels_the_upstream(
    triage: BackgroundServer, sim_control: SimControl
) -> None:
    sim_control.behave("cheap", ttft_ms=1500)
    async with httpx.AsyncClient(timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            body = {"model": "auto", "messages": USER, "stream": True}
            await http.post(triage.url + "/v1/chat/completions", json=body)
    # The simulator notices the closed connection when it next writes: at its first token, 1.5 s in.
    for _ in range(250):
        if sim_control.stats()["cancelled"] == 1:
            break
        await asyncio.sleep(0.02)
    assert sim_control.stats()["cancelled"] == 1
