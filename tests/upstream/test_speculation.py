"""Speculative warm-up: the cheap model starts while the (slow) LLM layer classifies; adopted or cancelled."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import openai
import pytest
from harness import SimControl, gateway_config, run_triage, ui_stream

from triage import ClassifyInput, Decision
from triage.classify import DEFAULT_CATEGORIES, SIMPLE

USER = [{"role": "user", "content": "Tell me about the moon"}]


class SlowCascade:
    """A staged classifier whose local pass is unsure and whose LLM pass takes `delay` seconds."""

    name = "cascade"
    expected_llm_ms = 180.0

    def __init__(self, category: str, delay: float = 0.18, *, fail: bool = False) -> None:
        self.category = category
        self.delay = delay
        self.fail = fail

    @property
    def categories(self) -> Sequence[str]:
        return DEFAULT_CATEGORIES

    async def classify_local(self, request: ClassifyInput) -> Decision:
        return Decision(SIMPLE, 0.4, {SIMPLE: 0.4}, "local", 0.05)

    def needs_llm(self, decision: Decision) -> bool:
        return True

    async def escalate(self, request: ClassifyInput, decision: Decision) -> Decision:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the LLM classifier broke")
        return Decision(self.category, 0.95, {self.category: 0.95}, "llm", self.delay * 1000)

    async def classify(self, request: ClassifyInput) -> Decision:
        return await self.escalate(request, await self.classify_local(request))


def config(sim_url: str, mode: str = "auto", **overrides: Any) -> Any:
    return gateway_config(sim_url, speculation={"mode": mode, "model": "cheap"}, **overrides)


async def ui_events(url: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    return (await ui_stream(url, body))[1]


async def streamed_text(url: str, body: dict[str, Any]) -> tuple[str, float, dict[str, str]]:
    """The answer's text, the time to its first content, and the response headers."""
    started = time.perf_counter()
    first: float | None = None
    text = []
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:]).get("choices", []):
                        if choice["delta"].get("content"):
                            first = first or time.perf_counter()
                            text.append(choice["delta"]["content"])
            headers = dict(response.headers)
    assert first is not None
    return "".join(text), first - started, headers


async def test_hit_adopts_the_stream_byte_identical_and_hides_classification(sim_control: SimControl) -> None:
    # Long delays so the comparison survives a loaded machine: 1 s to classify, 1 s to the first token.
    sim_control.behave("cheap", ttft_ms=1000, tokens_per_s=500)
    body = {"model": "auto", "messages": USER, "seed": 11}
    with run_triage(config(sim_control.url, "never"), classifier=SlowCascade("simple", delay=1.0)) as server:
        baseline_text, baseline_ttft, headers = await streamed_text(server.url, body)
    assert headers["x-triage-speculation"] == "off"
    with run_triage(config(sim_control.url, "auto"), classifier=SlowCascade("simple", delay=1.0)) as server:
        spec_text, spec_ttft, headers = await streamed_text(server.url, body)
    assert headers["x-triage-speculation"] == "hit"
    assert spec_text == baseline_text  # no duplicate or lost tokens
    # Without speculation: classify, then wait for the first token (2 s); with it, about max of the two (1 s).
    assert baseline_ttft >= 2.0
    assert spec_ttft < baseline_ttft - 0.6
    assert sim_control.requests_to("cheap") == 2 and sim_control.stats()["cancelled"] == 0


async def test_miss_cancels_the_speculation_and_records_the_waste(sim_control: SimControl) -> None:
    sim_control.behave("cheap", ttft_ms=20, tokens_per_s=50, completion_tokens=200)
    with run_triage(config(sim_control.url), classifier=SlowCascade("reasoning")) as server:
        events = await ui_events(server.url, {"messages": USER})
        route, usage = events[0][1], next(d for n, d in events if n == "usage")
        assert route["speculation"] == "miss" and route["model"] == "strong"
        assert usage["wasted_speculative_tokens"] > 0 and usage["wasted_cost_usd"] > 0
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(server.url + "/metrics")).text
    assert 'triage_speculation_total{outcome="miss"} 1.0' in metrics
    assert 'triage_speculative_wasted_tokens_total{kind="prompt"}' in metrics
    stats = sim_control.stats()
    assert stats["by_model"]["cheap"]["cancelled"] == 1  # the simulator saw the cancel
    assert stats["by_model"]["strong"]["completed"] == 1


async def test_failing_speculative_upstream_falls_back_silently(sim_control: SimControl) -> None:
    sim_control.behave("cheap", status=503)
    with run_triage(config(sim_control.url), classifier=SlowCascade("simple")) as server:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as client:
            completion = await client.chat.completions.create(model="auto", messages=USER)  # type: ignore[arg-type]
    assert completion.model == "backup"


@pytest.mark.parametrize("strongest", ["strong", "cheap"])
async def test_classifier_failure_falls_back_and_cancels_unless_the_fallback_is_cheap(
    sim_control: SimControl, strongest: str
) -> None:
    sim_control.behave("cheap", ttft_ms=20)
    broken = SlowCascade("simple", fail=True)
    with run_triage(config(sim_control.url, strongest=strongest), classifier=broken) as server:
        events = await ui_events(server.url, {"messages": USER})
    route = events[0][1]
    assert route["reason"] == "low_confidence" and route["model"] == strongest
    assert route["speculation"] == ("hit" if strongest == "cheap" else "miss")


async def test_local_only_decisions_do_not_speculate(sim_control: SimControl) -> None:
    with run_triage(config(sim_control.url)) as server:  # the rules classifier: nothing slow to hide
        events = await ui_events(server.url, {"messages": USER})
    assert events[0][1]["speculation"] == "off"
    assert sim_control.stats()["requests"] == 1


async def test_long_prompts_do_not_speculate_in_auto_mode(sim_control: SimControl) -> None:
    cfg = gateway_config(sim_control.url, speculation={"mode": "auto", "model": "cheap", "max_prompt_tokens": 10})
    with run_triage(cfg, classifier=SlowCascade("simple")) as server:
        events = await ui_events(server.url, {"messages": [{"role": "user", "content": "word " * 100}]})
    assert events[0][1]["speculation"] == "off"


async def test_client_disconnect_during_classification_cancels_the_speculation(sim_control: SimControl) -> None:
    sim_control.behave("cheap", ttft_ms=5, tokens_per_s=20, completion_tokens=200)
    with run_triage(config(sim_control.url), classifier=SlowCascade("simple", delay=1.0)) as server:
        async with httpx.AsyncClient(timeout=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(server.url + "/v1/chat/completions",
                                json={"model": "auto", "messages": USER, "stream": True})
        for _ in range(200):
            if sim_control.stats()["cancelled"] == 1:
                break
            await asyncio.sleep(0.02)
    stats = sim_control.stats()
    assert stats["cancelled"] == 1 and stats["active"] == 0


async def test_a_thousand_mixed_requests_leak_no_task_or_connection(sim_control: SimControl) -> None:
    import psutil

    sim_control.behave("cheap", ttft_ms=1, tokens_per_s=0, completion_tokens=5)
    sim_control.behave("strong", ttft_ms=1, tokens_per_s=0, completion_tokens=5)
    cascades = [SlowCascade("simple", delay=0.002), SlowCascade("reasoning", delay=0.002)]
    process = psutil.Process()
    with run_triage(config(sim_control.url, "always"), classifier=cascades[0]) as server:
        gateway = server.app.state.gateway  # type: ignore[attr-defined]
        loop_tasks = lambda: server.call(lambda: len(asyncio.all_tasks()))  # noqa: E731
        baseline_tasks = loop_tasks()
        baseline_fds = process.num_fds()
        semaphore = asyncio.Semaphore(16)

        async def one(i: int, http: httpx.AsyncClient) -> None:
            async with semaphore:
                gateway.swap_classifier(cascades[i % 2])
                body = {"model": "auto", "messages": [{"role": "user", "content": f"q{i}"}], "stream": i % 3 != 0}
                response = await http.post(server.url + "/v1/chat/completions", json=body)
                assert response.status_code == 200

        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=16)) as http:
            await asyncio.gather(*(one(i, http) for i in range(1000)))
        await asyncio.sleep(0.3)
        assert gateway.slots.active == 0
        assert loop_tasks() <= baseline_tasks + 2
        assert process.num_fds() <= baseline_fds + 40  # pooled keep-alive connections, not one per request
    stats = sim_control.stats()
    assert stats["active"] == 0
    assert stats["requests"] == stats["completed"] + stats["cancelled"] + stats["errors"]
