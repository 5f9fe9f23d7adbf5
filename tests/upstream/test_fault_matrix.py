"""The fault matrix: one test per upstream or client fault, its expected behaviour in its docstring, run through
each dialect it concerns: `openai` (`/v1/chat/completions`, streamed), `json` (the same, not streamed) and `ui`
(`/v1/triage/chat`). The rule behind every row: a failure before the first token is invisible (the next model of
the chain answers); after it, the stream ends with an explicit error and without its end marker, never silently.

Covered in test_fallback.py, not repeated here:
- 500/502/503/429/408 before the first token, `openai` and `json`: the next model answers
- connect refused, `openai`; timeout to the first token, `json`
- 429 with retry-after cools the model at once (`json`); the last model is retried after a short retry-after
- cut, malformed chunk and stall after the first token, `openai`: an error chunk, no `[DONE]`, no fallback
- every model failing, `openai` (502, OpenAI's error shape); every model timing out, `json` (504)
- a client that disconnects, before or after the first token: the upstream request is cancelled
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from harness import SimControl, gateway_config, patches_of, run_triage, wait_for

from triage.sim import BackgroundServer
from triage.stream.structured import apply_patch

USER = [{"role": "user", "content": "What is the capital of France?"}]  # rules: `simple`, chain cheap -> backup
# Tight timeouts keep the matrix fast; the simulator's 20 ms to the first token stays far below them.
TIMEOUTS = {"connect": 1, "first_token": 1, "idle": 1, "total": 20}
SEND_TIMEOUT = 0.5


@dataclass
class Outcome:
    """What a client saw: status, the answering model, and the stream's events (SSE dialects) or body (json)."""

    status: int
    model: str | None
    events: list[tuple[str, Any]] = field(default_factory=list)  # (event name, data); `openai` names all "message"
    body: Any = None

    @property
    def complete(self) -> bool:
        """The end marker arrived: `[DONE]`, the `done` event, or a whole JSON answer."""
        if self.status != 200:
            return False
        if not self.events:
            return isinstance(self.body, dict) and self.body.get("object") == "chat.completion"
        name, data = self.events[-1]
        return (name, data) == ("message", "[DONE]") or name == "done"

    @property
    def error(self) -> dict[str, Any]:
        """The error the client was given: the error body, or the stream's last event."""
        if self.status != 200:
            return dict(self.body["error"])
        name, data = self.events[-1]
        assert name in ("message", "error"), self.events[-1]
        return dict(data["error"] if name == "message" else data)

    @property
    def pieces(self) -> int:
        """Content pieces the client received before the end."""
        if not self.events:
            return 0
        return sum(1 for name, data in self.events if name == "delta" or (
            name == "message" and isinstance(data, dict) and any(c["delta"].get("content") for c in data["choices"])))


async def ask(url: str, dialect: str, **extra: Any) -> Outcome:
    body: dict[str, Any] = {"messages": USER, **extra}
    path = "/v1/triage/chat" if dialect == "ui" else "/v1/chat/completions"
    if dialect != "ui":
        body = {"model": "auto", "stream": dialect == "openai", **body}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http, http.stream("POST", path, json=body) as response:
        model = response.headers.get("x-triage-model")
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return Outcome(response.status_code, model, body=json.loads(await response.aread()))
        events: list[tuple[str, Any]] = []
        name = "message"
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
                events.append((name, data if data == "[DONE]" else json.loads(data)))
                name = "message"
        return Outcome(response.status_code, model, events)


def config(sim_url: str, **server: Any) -> Any:
    return gateway_config(
        sim_url,
        providers={"sim": {"base_url": sim_url + "/v1", "timeout": TIMEOUTS},
                   "down": {"base_url": "http://127.0.0.1:9/v1", "timeout": TIMEOUTS}},
        server={"cooldown_after_failures": 2, "cooldown_seconds": 30, "max_retry_after": 1, **server},
    )


@pytest.fixture
def triage(sim_control: SimControl) -> Iterator[BackgroundServer]:
    with run_triage(config(sim_control.url)) as server:
        yield server


ALL = ["openai", "json", "ui"]


# -- before the first token ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["json", "ui"])
async def test_connect_refused(sim_control: SimControl, dialect: str) -> None:
    """Connection refused by the first model's provider: the next model answers, whole; the client sees no error."""
    with run_triage(gateway_config(sim_control.url, routes={"simple": {"models": ["offline", "cheap"]}})) as server:
        outcome = await ask(server.url, dialect)
    assert outcome.complete and outcome.model == "cheap"


async def test_connect_refused_by_every_model_is_502(sim_control: SimControl) -> None:
    """Every provider of the chain refuses the connection: 502 `upstream_error` (cannot reach), not a 504: nothing
    timed out, and a client that reads 504 as "try later with a longer timeout" would wait for nothing."""
    with run_triage(gateway_config(sim_control.url)) as server:
        outcome = await ask(server.url, "json", model="offline")
    assert outcome.status == 502 and outcome.error["type"] == "upstream_error", outcome.body


@pytest.mark.parametrize("dialect", ["openai", "ui"])
async def test_timeout_to_first_token(triage: BackgroundServer, sim_control: SimControl, dialect: str) -> None:
    """No token within `first_token`: the next model answers, whole; the slow request upstream is cancelled."""
    sim_control.behave("cheap", ttft_ms=1500)
    started = time.monotonic()
    outcome = await ask(triage.url, dialect)
    assert outcome.complete and outcome.model == "backup"
    assert 1.0 <= time.monotonic() - started < 2.5
    # The simulator sees the closed connection when it next writes: at its first token, 1.5 s in.
    assert await wait_for(lambda: sim_control.stats()["by_model"]["cheap"]["cancelled"] == 1)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_error_status_ui(triage: BackgroundServer, sim_control: SimControl, status: int) -> None:
    """A 5xx before the first token (the UI stream; the other dialects are in test_fallback.py): the next model
    answers, the `route` event names it, and the stream ends with `done`."""
    sim_control.behave("cheap", status=status)
    outcome = await ask(triage.url, "ui")
    assert outcome.complete and outcome.model == "backup"
    assert outcome.events[0] == ("route", outcome.events[0][1]) and outcome.events[0][1]["model"] == "backup"


@pytest.mark.parametrize("dialect", ALL)
async def test_429_without_retry_after(triage: BackgroundServer, sim_control: SimControl, dialect: str) -> None:
    """429 without retry-after: the next model answers; one failure does not cool the model (cooldown after 2),
    so the next request asks it again."""
    sim_control.behave("cheap", status=429)
    for expected_asks in (1, 2):
        outcome = await ask(triage.url, dialect)
        assert outcome.complete and outcome.model == "backup"
        assert sim_control.requests_to("cheap") == expected_asks


@pytest.mark.parametrize("dialect", ["openai", "ui"])
async def test_429_with_retry_after(triage: BackgroundServer, sim_control: SimControl, dialect: str) -> None:
    """429 with retry-after (60 s): the next model answers, and the model rests for retry-after: the next request
    does not ask it."""
    sim_control.behave("cheap", status=429, retry_after=60)
    for _ in range(2):
        outcome = await ask(triage.url, dialect)
        assert outcome.complete and outcome.model == "backup"
    assert sim_control.requests_to("cheap") == 1


@pytest.mark.parametrize("dialect", ALL)
async def test_every_model_of_the_chain_failing(triage: BackgroundServer, sim_control: SimControl,
                                               dialect: str) -> None:
    """Every model of the chain fails before its first token: one 502 in OpenAI's error shape
    (`all_models_failed`), before any stream starts: no SSE, in either dialect. When the last failure is a
    timeout, the status is 504 (`timeout_error`)."""
    sim_control.behave("cheap", status=500)
    sim_control.behave("backup", status=503)
    outcome = await ask(triage.url, dialect)
    assert outcome.status == 502 and not outcome.events
    assert outcome.error["type"] == "upstream_error" and outcome.error["code"] == "all_models_failed"
    sim_control.behave("backup", ttft_ms=3000)
    outcome = await ask(triage.url, dialect)
    assert outcome.status == 504 and outcome.error["type"] == "timeout_error"


# -- after the first token ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [({"cut_after": 3}, "upstream_error"), ({"malformed_after": 3}, "upstream_error"),
     ({"stall_after": 3, "stall_s": 2}, "timeout_error")],
    ids=["cut", "malformed", "stall"],
)
async def test_failure_after_the_first_token_ui(
    triage: BackgroundServer, sim_control: SimControl, fault: dict[str, Any], error_type: str
) -> None:
    """Cut after 3 tokens, a malformed chunk after 3, or a stall past `idle` after 3 (the UI stream; `openai` is
    in test_fallback.py): the 3 deltas, then an `error` event (retryable), no `usage`, no `done`, no fallback;
    the upstream request is over (a stalled one is cancelled)."""
    sim_control.behave("cheap", **fault)
    outcome = await ask(triage.url, "ui")
    names = [name for name, _ in outcome.events]
    assert names == ["route", "delta", "delta", "delta", "error"], names
    assert outcome.error["type"] == error_type and outcome.error["retryable"] is True
    assert sim_control.requests_to("backup") == 0
    assert await wait_for(lambda: sim_control.stats()["active"] == 0)
    if "stall_after" in fault:
        assert sim_control.stats()["cancelled"] == 1


@pytest.mark.parametrize("dialect", ["openai", "ui"])
async def test_body_held_open_after_done(triage: BackgroundServer, sim_control: SimControl, dialect: str) -> None:
    """A provider that keeps the body open after `[DONE]`, past `idle`: the answer is whole and ends as usual,
    without waiting for the provider; its connection is closed rather than pooled (the provider sees it end)."""
    sim_control.behave("cheap", linger_s=5)
    started = time.monotonic()
    outcome = await ask(triage.url, dialect)
    assert outcome.complete, outcome.events[-1]
    assert time.monotonic() - started < 3
    assert await wait_for(lambda: sim_control.stats()["active"] == 0)


@pytest.mark.parametrize("fault", [{"cut_after": 3}, {"malformed_after": 3}, {"stall_after": 3, "stall_s": 3}],
                         ids=["cut", "malformed", "stall"])
async def test_broken_answer_not_streamed(triage: BackgroundServer, sim_control: SimControl,
                                          fault: dict[str, Any]) -> None:
    """A non-streamed answer cut short, malformed, or stalled past `idle`: nothing has reached the client yet, so
    it is a failure before the first token: the next model answers, whole."""
    sim_control.behave("cheap", **fault)
    outcome = await ask(triage.url, "json")
    assert outcome.complete and outcome.model == "backup"


async def test_invalid_json_in_a_structured_answer(triage: BackgroundServer, sim_control: SimControl) -> None:
    """A structured answer (UI stream, `structured: true`) that is not JSON: the patches of the valid prefix, then
    an `error` event (`structured_output_error`, not retryable, `path` naming the container), no `done`. In the `openai`
    dialect Triage does not parse answers: the text passes through as the model wrote it, ending in `[DONE]`."""
    broken = '{"title": "Paris", "summary": oops}'
    sim_control.behave("cheap", reply=broken)
    outcome = await ask(triage.url, "ui", structured=True)
    names = [name for name, _ in outcome.events]
    assert names[0] == "route" and names[-1] == "error" and "done" not in names
    document: Any = {}
    for patch in patches_of(outcome.events):
        document = apply_patch(document, patch)
    assert document == {"title": "Paris"}
    error = outcome.error
    assert error["type"] == "structured_output_error" and error["retryable"] is False and "path" in error
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    passed = await ask(triage.url, "openai", response_format=fmt)
    assert passed.complete
    text = "".join(c["delta"].get("content") or "" for _, d in passed.events[:-1] for c in d["choices"])
    assert text == broken


async def test_structured_answer_against_its_schema(triage: BackgroundServer, sim_control: SimControl) -> None:
    """Valid JSON that breaks its schema (`title` a number): an `error` event naming the field's path."""
    sim_control.behave("cheap", reply='{"title": 5, "summary": "s", "steps": [], "follow_up_questions": []}')
    outcome = await ask(triage.url, "ui", structured=True)
    assert outcome.events[-1][0] == "error"
    assert outcome.error["type"] == "structured_output_error" and outcome.error["path"] == "/title"


# -- a client that stops reading ---------------------------------------------------------------------------------


def stop_reading(url: str, path: str, body: dict[str, Any]) -> socket.socket:
    """Send `body`, read the response head, then read nothing more (a tiny receive buffer fills at once)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    payload = json.dumps(body).encode()
    sock.sendall(b"POST %s HTTP/1.1\r\nhost: triage\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                 % (path.encode(), len(payload)) + payload)
    assert sock.recv(12) == b"HTTP/1.1 200"
    return sock


async def stall_a_reader(sim_control: SimControl, dialect: str) -> None:
    """A client stops reading mid-stream; returns once Triage has dropped it."""
    # 16 MB paced over 10 s, in 16 kB words: loopback buffers toward the client (~3 MB here) fill within 2 s, while
    # the simulator, which keeps time, is still far from its end, whatever the buffers between it and Triage hold.
    sim_control.behave("cheap", reply=(" " + "x" * 16_000) * 1000, tokens_per_s=100)
    path = "/v1/triage/chat" if dialect == "ui" else "/v1/chat/completions"
    body = {"messages": USER} if dialect == "ui" else {"model": "auto", "stream": True, "messages": USER}
    with run_triage(config(sim_control.url, send_timeout=SEND_TIMEOUT)) as server:
        gateway = server.app.state.gateway  # type: ignore[attr-defined]
        sock = await asyncio.to_thread(stop_reading, server.url, path, body)
        try:
            assert await wait_for(lambda: sim_control.stats()["cancelled"] == 1, within=8), sim_control.stats()
            stats = sim_control.stats()
            assert stats["active"] == 0 and stats["completed"] == 0
            assert await wait_for(lambda: server.call(lambda: gateway.slots.active) == 0)
            # The connection is closed: draining what was buffered ends in EOF (or a reset), not in a timeout.
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass
        finally:
            sock.close()


@pytest.mark.parametrize("dialect", ["openai", "ui"])
async def test_client_that_stops_reading(sim_control: SimControl, dialect: str) -> None:
    """A client that stops reading mid-stream (without closing): once a send has waited `server.send_timeout`, Triage
    drops the connection, closes the upstream request (the simulator counts it cancelled), and frees the slot."""
    await stall_a_reader(sim_control, dialect)


async def test_dropping_a_reader_that_stopped_is_not_an_error(
    sim_control: SimControl, caplog: pytest.LogCaptureFixture
) -> None:
    """Dropping a client that stopped reading is Triage doing its job: no traceback, no ERROR from Triage. (uvicorn
    notes in one line that the response was left incomplete: ASGI has no other way to drop a connection whose
    reader is stuck, since every send, the last one too, first waits for the socket to drain.)"""
    await stall_a_reader(sim_control, "openai")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r for r in errors if r.exc_info] == []
    assert [r.getMessage() for r in errors if not r.name.startswith("uvicorn")] == []
