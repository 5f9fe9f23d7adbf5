"""Traces (OpenTelemetry, GenAI semantic conventions), JSON log lines with request ids, and `--workers N` whose
metrics add up over the workers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import psutil
import pytest
from harness import SimControl, gateway_config, run_triage
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from servers import config_dict, store_config, triage_instance

from triage.app._tracing import Tracing, tracing_enabled

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_tracing_is_off_unless_the_otel_variables_ask() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled({"OTEL_TRACES_EXPORTER": "console"})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not tracing_enabled({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing_enabled({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"})


async def test_a_routed_request_makes_genai_spans_with_its_children(
    sim_control: SimControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # on: the gateway adds the context middleware
    exporter = InMemorySpanExporter()
    with run_triage(gateway_config(sim_control.url)) as server:
        gateway = server.app.state.gateway  # type: ignore[attr-defined]
        gateway.tracing.shutdown()
        gateway.tracing = Tracing.with_exporters([exporter], batch=False)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            body = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}], "stream": True}
            response = await http.post("/v1/chat/completions", json=body, headers={"traceparent": TRACEPARENT})
            assert response.status_code == 200
            for _ in range(100):
                if len(exporter.get_finished_spans()) >= 3:
                    break
                await asyncio.sleep(0.02)
    spans: dict[str, ReadableSpan] = {s.name: s for s in exporter.get_finished_spans()}
    request, classify, upstream = spans["chat auto"], spans["classify"], spans["chat cheap"]
    assert request.kind == SpanKind.SERVER and upstream.kind == SpanKind.CLIENT
    assert request.context.trace_id == int(TRACEPARENT.split("-")[1], 16)  # the client's trace
    assert request.parent is not None and request.parent.span_id == int(TRACEPARENT.split("-")[2], 16)
    assert classify.parent.span_id == request.context.span_id == upstream.parent.span_id  # type: ignore[union-attr]
    attributes = dict(request.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "auto" and attributes["gen_ai.response.model"] == "cheap"
    assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["triage.category"] == "simple" and 0 <= attributes["triage.confidence"] <= 1
    assert attributes["triage.speculation"] in ("hit", "miss", "off")
    assert attributes["triage.request_id"] == response.headers["x-triage-request-id"]
    assert request.start_time <= classify.start_time <= classify.end_time <= upstream.end_time  # type: ignore[operator]
    assert not any("hello" in str(v) for s in spans.values() for v in (s.attributes or {}).values())


async def test_json_log_lines_carry_the_request_id(sim_control: SimControl) -> None:
    config = config_dict(gateway_config(sim_control.url))
    with triage_instance(config, args=("--log-level", "info", "--log-format", "json")) as server:
        async with httpx.AsyncClient(timeout=10) as http:
            body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            response = await http.post(server.url + "/v1/chat/completions", json=body)
            request_id = response.headers["x-triage-request-id"]
        await asyncio.sleep(0.2)
        lines = [line for line in server.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r.get("request_id") == request_id and "/v1/chat/completions" in r["message"] for r in records)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_two_workers_serve_one_store_and_their_metrics_add_up(
    sim_control: SimControl, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = (store_config(request.getfixturevalue("pg_url")) if backend == "postgresql"
             else {"path": str(tmp_path / "triage.db")})
    config = config_dict(gateway_config(sim_control.url, store=store))
    with triage_instance(config, workers=2) as server:
        workers = psutil.Process(server.process.pid).children()
        assert len([p for p in workers if "spawn_main" in " ".join(p.cmdline())]) == 2
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(20):  # a new connection each: the kernel spreads them over both workers
                assert (await http.post(server.url + "/v1/chat/completions", json=body)).status_code == 200
            totals = set()
            for _ in range(6):  # whichever worker answers the scrape, the sum is the same
                text = (await http.get(server.url + "/metrics")).text
                line = next(x for x in text.splitlines()
                            if x.startswith('triage_requests_total{endpoint="chat.completions",status="ok"}'))
                totals.add(float(line.rsplit(" ", 1)[1]))
            stats = (await http.get(server.url + "/v1/stats", params={"until": time.time() + 60})).json()
    assert totals == {20.0}
    assert stats["totals"]["requests"] >= 10  # this worker's own writes at least; all once both flushed
