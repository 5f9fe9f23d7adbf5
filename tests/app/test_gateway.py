"""The OpenAI-compatible endpoint end to end: the official openai client -> Triage -> the simulator, over loopback."""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import httpx
import openai
import pytest
from harness import SimControl, wait_for

from triage.sim import BackgroundServer

USER = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def test_non_streaming_answer_is_routed_and_labelled(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="auto", messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.model == "cheap"
    assert raw.headers["x-triage-category"] == "simple"
    assert raw.headers["x-triage-model"] == "cheap"
    assert raw.headers["x-triage-reason"] == "rule"
    assert float(raw.headers["x-triage-confidence"]) == 1.0
    assert raw.headers["x-triage-request-id"].startswith("req_")
    assert completion.usage is not None and completion.usage.completion_tokens > 0


async def test_streaming_answer_ends_with_done(client: openai.AsyncOpenAI, triage: BackgroundServer) -> None:
    stream = await client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Write a python function that reverses a list"}],
        stream=True,
    )
    text, models = [], set()
    async for chunk in stream:
        models.add(chunk.model)
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
    assert models == {"strong"}
    assert "".join(text)
    # On the wire: the last event is [DONE], and no usage chunk the client did not ask for.
    async with httpx.AsyncClient() as http, http.stream("POST", triage.url + "/v1/chat/completions",
                           json={"model": "auto", "messages": USER, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-triage-model"] == "cheap"
        events = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all('"usage":{' not in e for e in events)


async def test_usage_chunk_when_the_client_asks(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="auto", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    usages = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert len(usages) == 1 and usages[0].completion_tokens > 0


async def test_tool_call_stream_passes_through(client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    stream = await client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="auto", stream=True,
    )
    name, arguments, finish = "", "", None
    async for chunk in stream:
        assert chunk.model == "cheap"
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                name += (call.function.name or "") if call.function else ""
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert "city" in json.loads(arguments)
    assert finish == "tool_calls"
    sent = sim_control.last_request("cheap")
    assert sent["tools"] == [WEATHER_TOOL]
    assert sent["tool_choice"] == "auto"


async def test_request_fields_pass_through_untouched(client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    await client.chat.completions.create(
        model="auto", messages=USER, temperature=0.3, max_tokens=55, seed=7, user="u-1", top_p=0.9,
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
        extra_body={"vendor_specific": {"x": 1}},
    )
    sent = sim_control.last_request("cheap")
    assert sent["model"] == "cheap"
    passed = (sent["temperature"], sent["max_tokens"], sent["seed"], sent["user"], sent["top_p"])
    assert passed == (0.3, 55, 7, "u-1", 0.9)
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert sent["vendor_specific"] == {"x": 1}


async def test_concrete_model_bypasses_routing(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="backup", messages=USER)
    assert raw.parse().model == "backup"
    assert raw.headers["x-triage-reason"] == "forced"
    assert "x-triage-category" not in raw.headers


async def test_models_health_and_metrics(triage: BackgroundServer, client: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert models == ["auto", "cheap", "strong", "backup", "offline"]
    await client.chat.completions.create(model="auto", messages=USER)
    async with httpx.AsyncClient(base_url=triage.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        text = (await http.get("/metrics")).text
    assert 'triage_routes_total{category="simple",model="cheap",reason="rule"} 1.0' in text
    assert "triage_time_to_first_token_seconds_bucket" in text or "triage_request_seconds_bucket" in text
    assert "triage_cost_usd_total" in text


async def test_a_finished_stream_is_freed_without_the_garbage_collector(
    client: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer (its chunks, upstream response, accounting) is freed when its stream ends, not at the next garbage
    collection: sse-starlette's cancelled tasks leave a reference cycle behind that must not reach it."""
    from triage.stream import _answer

    answers: list[weakref.ref[_answer.Answer[Any]]] = []
    init = _answer.Answer.__init__

    def tracked(self: _answer.Answer[Any], *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        answers.append(weakref.ref(self))

    monkeypatch.setattr(_answer.Answer, "__init__", tracked)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            stream = await client.chat.completions.create(model="auto", messages=USER, stream=True)
            async for _chunk in stream:
                pass
        assert len(answers) == 3
        # The server's thread finishes each response just after the client's last byte.
        assert await wait_for(lambda: all(ref() is None for ref in answers))
    finally:
        gc.enable()
