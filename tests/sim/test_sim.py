"""The simulated provider over real loopback HTTP, driven by the official openai client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import Enum
from typing import Any

import httpx
import httpx2
import openai
import pytest
from pydantic import BaseModel, Field
from starlette.applications import Starlette

from triage.sim import BackgroundServer, SimBehaviour, SimConfig, create_sim_app, load_sim_config

MESSAGES: list[Any] = [{"role": "user", "content": "Explain the routing table in two sentences."}]
FAST: dict[str, Any] = {"ttft_ms": 0, "tokens_per_s": 0}


async def configure(url: str, model: str, **behaviour: Any) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        (await http.put(f"/sim/models/{model}", json=behaviour)).raise_for_status()


async def get_json(url: str) -> Any:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
        response.raise_for_status()
        return response.json()


async def wait_for_stats(url: str, done: Callable[[dict[str, Any]], bool], timeout: float = 2.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = await get_json(f"{url}/sim/stats")
        if done(stats) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.01)


@asynccontextmanager
async def openai_client(url: str, **options: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", **{"max_retries": 0, **options}) as client:
        yield client


@pytest.fixture
async def client(sim_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai_client(sim_url) as client:
        yield client


async def stream_text(client: openai.AsyncOpenAI, model: str = "m", **params: Any) -> tuple[list[str], Any]:
    """The content deltas of a streamed answer, and its last chunk."""
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True, **params)
    pieces: list[str] = []
    last = None
    async with stream:
        async for chunk in stream:
            last = chunk
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    return pieces, last


async def test_non_stream_answer(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", completion_tokens=12, **FAST)
    completion = await client.chat.completions.create(model="m", messages=MESSAGES)
    choice = completion.choices[0]
    assert completion.object == "chat.completion" and completion.model == "m"
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content and len(choice.message.content.split()) == 12
    assert completion.usage is not None and completion.usage.completion_tokens == 12
    # ceil(44 characters / 4) + 4 per message
    assert completion.usage.prompt_tokens == 15 and completion.usage.total_tokens == 27


async def test_stream_answer_with_usage_matches_the_non_stream_one(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", **FAST)
    pieces, last = await stream_text(client, stream_options={"include_usage": True})
    assert len(pieces) == 40 and all(p.startswith(" ") for p in pieces[1:])
    assert last.choices == [] and last.usage.completion_tokens == 40
    completion = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == "".join(pieces)


async def test_the_wire_format_is_openais(sim_url: str) -> None:
    await configure(sim_url, "m", completion_tokens=3, **FAST)
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{sim_url}/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.content.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert all(e.startswith(b"data: {") for e in events[:-2])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:4]] != []
    assert chunks[4]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[5]["choices"] == [] and chunks[5]["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:5])


async def test_time_to_first_token_and_speed_follow_the_behaviour(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", ttft_ms=150, tokens_per_s=100, completion_tokens=10)
    start = time.perf_counter()
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    arrivals = []
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.perf_counter() - start)
    assert 0.14 <= arrivals[0] < 0.4
    # The simulator keeps to its schedule (a chunk sent late does not push the later ones back), so the span from the
    # first arrival depends on how late that one was; the last of the 10 is due at 150 ms + 9 gaps of 10 ms.
    assert 0.23 <= arrivals[-1] < 0.6


async def test_same_request_and_seed_give_identical_content(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", **FAST)
    first, _ = await stream_text(client, seed=7)
    again, _ = await stream_text(client, seed=7)
    other_seed, _ = await stream_text(client, seed=8)
    other_model, _ = await stream_text(client, model="n", seed=7)
    assert first == again
    assert first != other_seed and first != other_model


async def test_max_tokens_truncates_with_length(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", **FAST)
    completion = await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5


async def test_logprobs_with_alternatives(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", completion_tokens=4, logprob=-0.2, **FAST)
    completion = await client.chat.completions.create(model="m", messages=MESSAGES, logprobs=True, top_logprobs=3)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None and len(logprobs.content) == 4
    for entry in logprobs.content:
        assert entry.logprob == -0.2 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token
        assert all(alt.logprob < entry.logprob for alt in entry.top_logprobs[1:])
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True, logprobs=True)
    async with stream:
        tokens = [c.choices[0].logprobs.content[0].token async for c in stream if c.choices[0].logprobs]  # type: ignore[index]
    assert "".join(tokens) == completion.choices[0].message.content


class Unit(str, Enum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class Weather(BaseModel):
    city: str
    days: int = Field(ge=1, le=7)
    unit: Unit


class Lookup(BaseModel):
    query: str


def tool(name: str, model: type[BaseModel]) -> Any:
    # Any: the openai client types `tools` as TypedDicts, which a plain dict literal built here does not satisfy.
    return {"type": "function", "function": {"name": name, "parameters": model.model_json_schema()}}


async def assemble_tool_call(client: openai.AsyncOpenAI, **params: Any) -> tuple[str, str, list[str], str | None]:
    """(name, arguments, argument pieces, finish_reason) of a streamed tool call."""
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True, **params)
    name, pieces, finish = "", [], None
    async with stream:
        async for chunk in stream:
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                assert call.index == 0
                if call.id is not None:
                    assert not name and call.type == "function" and call.function and call.function.arguments == ""
                    name = call.function.name or ""
                elif call.function and call.function.arguments:
                    pieces.append(call.function.arguments)
    return name, "".join(pieces), pieces, finish


async def test_a_tool_call_streams_valid_arguments(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", **FAST)
    tools = [tool("lookup", Lookup), tool("weather", Weather)]
    name, arguments, pieces, finish = await assemble_tool_call(client, tools=tools)
    assert name == "lookup" and finish == "tool_calls" and len(pieces) > 1
    Lookup.model_validate_json(arguments)
    forced = {"type": "function", "function": {"name": "weather"}}
    name, arguments, _, _ = await assemble_tool_call(client, tools=tools, tool_choice=forced)
    assert name == "weather"
    Weather.model_validate_json(arguments)
    completion = await client.chat.completions.create(model="m", messages=MESSAGES, tools=tools, tool_choice="none")
    assert completion.choices[0].message.content and not completion.choices[0].message.tool_calls


async def test_fixed_tool_arguments(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", tool_arguments={"city": "Oslo", "days": 2, "unit": "celsius"}, **FAST)
    completion = await client.chat.completions.create(model="m", messages=MESSAGES, tools=[tool("weather", Weather)])
    calls = completion.choices[0].message.tool_calls
    assert calls and completion.choices[0].finish_reason == "tool_calls"
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo", "days": 2, "unit": "celsius"}  # type: ignore[union-attr]


class Step(BaseModel):
    text: str
    minutes: int = Field(ge=1, le=30)


class Plan(BaseModel):
    title: str
    unit: Unit
    steps: list[Step]
    done: bool
    score: float
    note: str | None


async def test_a_json_schema_answer_validates(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", **FAST)
    # The openai helper sends the strict schema ($defs, $ref, anyOf for the optional field) and parses the answer.
    completion = await client.chat.completions.parse(model="m", messages=MESSAGES, response_format=Plan)
    plan = completion.choices[0].message.parsed
    assert isinstance(plan, Plan) and plan.steps and plan.note is not None
    schema = Plan.model_json_schema()
    for response_format in (
        {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}},
        {"type": "json_object", "schema": schema},  # llama-cpp-python's dialect
    ):
        pieces, last = await stream_text(client, response_format=response_format)
        assert all(1 <= len(p) <= 8 for p in pieces) and len(pieces) > 10
        Plan.model_validate_json("".join(pieces))
        assert last.choices[0].finish_reason == "stop"


async def test_a_plain_json_object_answer(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", **FAST)
    pieces, _ = await stream_text(client, response_format={"type": "json_object"})
    answer = json.loads("".join(pieces))
    assert set(answer) == {"title", "summary", "steps"} and len(answer["steps"]) == 3


async def test_a_fixed_reply_is_used_verbatim(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", reply="Hello,  world!\n", **FAST)
    pieces, _ = await stream_text(client)
    assert pieces == ["Hello,", "  world!\n"]
    await configure(sim_url, "m", reply='{"category": "simple"}', **FAST)
    pieces, _ = await stream_text(client, response_format={"type": "json_object"})
    assert "".join(pieces) == '{"category": "simple"}'


async def test_an_error_status_with_retry_after(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", status=429, retry_after=1.5)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert caught.value.response.headers["retry-after"] == "1.5"
    assert caught.value.type == "rate_limit_error" and caught.value.code == "sim_429"
    await configure(sim_url, "m", status=503)
    with pytest.raises(openai.InternalServerError) as server_error:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert server_error.value.status_code == 503 and "retry-after" not in server_error.value.response.headers
    stats = await get_json(f"{sim_url}/sim/stats")
    assert stats["by_model"]["m"] == {"requests": 2, "completed": 0, "cancelled": 0, "errors": 2}


async def test_fail_first_then_recover(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", status=503, fail_first=2, retry_after=0.01, **FAST)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=MESSAGES)
    assert (await client.chat.completions.create(model="m", messages=MESSAGES)).choices[0].message.content
    # Setting the behaviour again restarts the count; the openai client's own retries (honouring retry-after) recover.
    await configure(sim_url, "m", status=503, fail_first=2, retry_after=0.01, **FAST)
    async with openai_client(sim_url, max_retries=2) as retrying:
        assert (await retrying.chat.completions.create(model="m", messages=MESSAGES)).choices[0].message.content
    stats = await get_json(f"{sim_url}/sim/stats")
    assert stats["by_model"]["m"] == {"requests": 6, "completed": 2, "cancelled": 0, "errors": 4}


@pytest.mark.parametrize(
    ("transport", "error"),
    [("httpx", httpx2.RemoteProtocolError), ("aiohttp", httpx2.ReadError)],
)
async def test_cut_after_drops_the_connection_mid_stream(sim_url: str, transport: str, error: type[Exception]) -> None:
    await configure(sim_url, "m", cut_after=3, **FAST)
    http_client = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    async with openai_client(sim_url, http_client=http_client) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        pieces = []
        # The openai client does not wrap transport errors raised while iterating a stream.
        with pytest.raises(error):
            async with stream:
                async for chunk in stream:
                    if chunk.choices[0].delta.content:
                        pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) == 3
    stats = await wait_for_stats(sim_url, lambda s: s["errors"] == 1)
    assert stats["by_model"]["m"] == {"requests": 1, "completed": 0, "cancelled": 0, "errors": 1}


async def test_cut_after_truncates_a_non_stream_answer(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", cut_after=0, **FAST)
    with pytest.raises(openai.APIConnectionError) as caught:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)


async def test_a_stall_pauses_the_stream(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", completion_tokens=4, stall_after=2, stall_s=0.3, **FAST)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    arrivals = []
    async with stream:
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                arrivals.append(time.perf_counter())
    assert len(arrivals) == 4 and arrivals[2] - arrivals[1] >= 0.28 and arrivals[1] - arrivals[0] < 0.1


async def test_a_stall_past_the_read_timeout(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", stall_after=1, stall_s=10, **FAST)
    stream = await client.with_options(timeout=0.2).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(httpx2.ReadTimeout):
        async with stream:
            async for _ in stream:
                pass
    # The stalled generator is cancelled when the client goes away, not after its 10 s.
    stats = await wait_for_stats(sim_url, lambda s: s["cancelled"] == 1)
    assert stats["cancelled"] == 1 and stats["active"] == 0


async def test_a_malformed_chunk(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", completion_tokens=4, malformed_after=2, **FAST)
    pieces = []
    with pytest.raises(json.JSONDecodeError):
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async with stream:
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) == 2
    # On the wire the stream goes on after the bad line and ends normally.
    async with httpx.AsyncClient() as http:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        events = (await http.post(f"{sim_url}/v1/chat/completions", json=body)).content.split(b"\n\n")
    assert events[3] == b"data: {not json" and events[-2] == b"data: [DONE]" and len(events) == 1 + 4 + 1 + 1 + 2


async def test_a_client_going_away_is_counted_as_cancelled(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", ttft_ms=0, tokens_per_s=50)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received = 0
    async for chunk in stream:
        received += bool(chunk.choices[0].delta.content)
        if received == 2:
            break
    assert (await get_json(f"{sim_url}/sim/stats"))["active"] == 1
    await stream.close()
    stats = await wait_for_stats(sim_url, lambda s: s["cancelled"] == 1)
    assert stats["cancelled"] == 1 and stats["active"] == 0 and stats["completed"] == 0
    assert stats["by_model"]["m"]["cancelled"] == 1


async def test_behaviours_are_set_and_removed_at_run_time(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "special", reply="fixed", **FAST)
    models = await client.models.list()
    assert [m.id for m in models.data] == ["special"]
    completion = await client.chat.completions.create(model="special", messages=MESSAGES)
    assert completion.choices[0].message.content == "fixed"
    async with httpx.AsyncClient(base_url=sim_url) as http:
        assert (await http.delete("/sim/models/special")).status_code == 204
        assert (await http.delete("/sim/models/special")).status_code == 404
        refused = await http.put("/sim/models/x", json={"ttft_ms": -1})
        assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
        assert (await http.put("/sim/models/x", json={"nonsense": 1})).status_code == 400
    assert (await client.models.list()).data == []
    completion = await client.chat.completions.create(model="special", messages=MESSAGES, max_tokens=3)
    assert completion.choices[0].message.content != "fixed"


async def test_the_last_request_is_kept_per_model(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", **FAST)
    tools = [tool("weather", Weather)]
    response_format: Any = {"type": "json_object"}
    await client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        temperature=0.3,
        tools=tools,
        tool_choice="none",
        response_format=response_format,
        extra_body={"custom": 1},
    )
    last = await get_json(f"{sim_url}/sim/requests/m/last")
    assert last["temperature"] == 0.3 and last["tools"] == tools and last["response_format"] == response_format
    assert last["custom"] == 1 and last["messages"] == MESSAGES
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{sim_url}/sim/requests/other/last")).status_code == 404


async def test_bad_requests_get_openai_errors(client: openai.AsyncOpenAI, sim_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=[])
    assert caught.value.param == "messages" and caught.value.type == "invalid_request_error"
    forced: Any = {"type": "function", "function": {"name": "missing"}}
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        await client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            tools=[tool("weather", Weather)],
            tool_choice=forced,
        )
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{sim_url}/v1/chat/completions", content=b"{oops")
    assert response.status_code == 400 and set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_reset_zeroes_the_counters(client: openai.AsyncOpenAI, sim_url: str) -> None:
    await configure(sim_url, "m", **FAST)
    await client.chat.completions.create(model="m", messages=MESSAGES)
    assert (await get_json(f"{sim_url}/sim/stats"))["completed"] == 1
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{sim_url}/sim/reset")).status_code == 204
    stats = await get_json(f"{sim_url}/sim/stats")
    assert stats == {"requests": 0, "active": 0, "completed": 0, "cancelled": 0, "errors": 0, "by_model": {}}
    assert [m["id"] for m in (await get_json(f"{sim_url}/v1/models"))["data"]] == ["m"]  # behaviours stay


def test_sim_config_from_yaml_and_flags(tmp_path: Any) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("default: {ttft_ms: 5}\nmodels: {big: {tokens_per_s: 50, status: 503}}\nseed: 3\n")
    config = load_sim_config(path, {"completion_tokens": 7})
    assert config.default == SimBehaviour(ttft_ms=5, completion_tokens=7) and config.seed == 3
    assert config.models["big"].status == 503
    assert isinstance(create_sim_app(config), Starlette)
    assert create_sim_app(SimConfig()).state.sim.behaviour("any") == SimBehaviour()


def test_background_server_reports_a_failed_start() -> None:
    @asynccontextmanager
    async def failing(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    with pytest.raises(RuntimeError, match="did not start"), BackgroundServer(Starlette(lifespan=failing)):
        pass
