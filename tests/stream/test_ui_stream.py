"""The browser dialect: named events, structured patches, errors in-band, over real loopback HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from harness import SimControl, patches_of, ui_stream

from triage.sim import BackgroundServer
from triage.stream.structured import apply_patch

USER = [{"role": "user", "content": "What is the capital of France?"}]


async def test_plain_answer_streams_route_deltas_usage_done(triage: BackgroundServer) -> None:
    response, events = await ui_stream(triage.url, {"messages": USER})
    names = [name for name, _ in events]
    assert names[0] == "route" and names[-2:] == ["usage", "done"]
    route = events[0][1]
    assert route["category"] == "simple" and route["model"] == "cheap" and route["reason"] == "rule"
    assert route["request_id"] == response.headers["x-triage-request-id"]
    assert route["classifier"] == "rules" and route["classify_ms"] >= 0 and route["speculation"] == "off"
    assert "".join(data["text"] for name, data in events if name == "delta")
    usage = events[-2][1]
    assert usage["completion_tokens"] > 0
    assert usage["baseline_cost_usd"] > usage["cost_usd"] > 0
    assert usage["saved_usd"] == pytest.approx(usage["baseline_cost_usd"] - usage["cost_usd"])


async def test_structured_answer_streams_patches_that_replay_to_the_final_json(
    triage: BackgroundServer, sim_control: SimControl
) -> None:
    _, events = await ui_stream(triage.url, {"messages": USER, "structured": True})
    patches = patches_of(events)
    assert not [name for name, _ in events if name == "delta"]
    document: Any = {}
    for patch in patches:
        document = apply_patch(document, patch)
    assert set(document) == {"title", "summary", "steps", "follow_up_questions"}
    assert isinstance(document["steps"], list)
    assert patches[-1] == {"op": "done", "path": ""}
    sent = sim_control.last_request("cheap")
    assert sent["response_format"]["type"] == "json_schema"
    assert "structured" not in sent


async def test_invalid_json_in_a_structured_answer_is_an_error_event(
    triage: BackgroundServer, sim_control: SimControl
) -> None:
    sim_control.behave("cheap", reply='{"title": "ok", "steps": [1,, 2]}')
    _, events = await ui_stream(triage.url, {"messages": USER, "structured": True})
    assert events[-1][0] == "error"
    assert events[-1][1]["type"] == "structured_output_error"
    assert "done" not in [name for name, _ in events]


async def test_schema_violation_names_the_path(triage: BackgroundServer, sim_control: SimControl) -> None:
    sim_control.behave("cheap", reply='{"title": 5, "summary": "s", "steps": [], "follow_up_questions": []}')
    _, events = await ui_stream(triage.url, {"messages": USER, "structured": True})
    assert events[-1][0] == "error" and events[-1][1]["path"] == "/title"


async def test_cut_after_first_token_is_an_error_event_not_done(
    triage: BackgroundServer, sim_control: SimControl
) -> None:
    sim_control.behave("cheap", cut_after=3)
    _, events = await ui_stream(triage.url, {"messages": USER})
    assert events[-1][0] == "error" and events[-1][1]["retryable"] is True
    assert "done" not in [name for name, _ in events]


async def test_invalid_structured_schema_is_422(triage: BackgroundServer) -> None:
    response, _ = await ui_stream(
        triage.url, {"messages": USER, "structured": {"schema": {"type": "object", "properties": {"a": {"type": 7}}}}}
    )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_tool_calls_arrive_as_tool_call_events(triage: BackgroundServer) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    _, events = await ui_stream(triage.url, {"messages": USER, "tools": [tool]})
    calls = [data for name, data in events if name == "tool_call"]
    assert calls[0]["name"] == "lookup"
    json.loads("".join(c["arguments"] for c in calls))
    assert events[0][1]["category"] == "tool_use"
