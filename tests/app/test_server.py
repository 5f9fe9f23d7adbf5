"""`triage serve`'s process-level pieces: the collector under 2,000 held streams (issue 8), and each response head
written with its first body write (issue 18; the whole suite serves Triage through that protocol, tests/harness.py)."""

from __future__ import annotations

import argparse
import asyncio
import gc
from typing import Any

import pytest
import uvicorn

from triage._types import Message, Receive, Scope, Send
from triage.app._serving import GC_GEN0_THRESHOLD, FreezeAfterStartup, HeadWithBodyProtocol, _HeadHeldTransport
from triage.cli import _serve as _server


async def test_the_startup_heap_is_frozen_once_started() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            seen.append(f"frozen before startup.complete: {gc.get_freeze_count() > 0}")
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "http.response.start", "status": 204, "headers": []})

    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        messages.append(message)
        seen.append(f"frozen at {message['type']}: {gc.get_freeze_count() > 0}")

    gc.unfreeze()
    try:
        await FreezeAfterStartup(app)({"type": "lifespan"}, receive, send)
        # Requests pass straight through, untouched.
        await FreezeAfterStartup(app)({"type": "http"}, receive, send)
    finally:
        gc.unfreeze()
    assert seen == [
        "frozen before startup.complete: False",
        "frozen at lifespan.startup.complete: True",
        "frozen at http.response.start: True",
    ]
    assert [m["type"] for m in messages] == ["lifespan.startup.complete", "http.response.start"]


def test_serve_raises_the_young_generation_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(app))
    before = gc.get_threshold()
    try:
        _server.run(argparse.Namespace(config=None, host=None, port=0, log_level="warning"))
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *before[1:])
    finally:
        gc.set_threshold(*before)
    assert isinstance(served[0], FreezeAfterStartup)


class RecordingTransport:
    """What the held-head transport writes through to: the writes as they reach the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 4242)}.get(name, default)


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"


async def test_a_response_head_goes_out_with_the_first_body_write() -> None:
    inner = RecordingTransport()
    transport = _HeadHeldTransport(inner)  # type: ignore[arg-type]
    transport.write(HEAD)
    assert inner.writes == []
    transport.write(b"5\r\nhello\r\n")
    transport.write(b"1\r\n!\r\n")
    assert inner.writes == [HEAD + b"5\r\nhello\r\n", b"1\r\n!\r\n"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 4242)  # the rest is the transport's own


async def test_a_head_alone_goes_out_at_the_end_of_the_loop_iteration() -> None:
    inner = RecordingTransport()
    transport = _HeadHeldTransport(inner)  # type: ignore[arg-type]
    transport.write(HEAD)
    assert transport.get_write_buffer_size() == len(HEAD)
    await asyncio.sleep(0)
    assert inner.writes == [HEAD]
    # Closing flushes a held head first; a client gone meanwhile gets nothing written.
    transport.write(HEAD)
    transport.close()
    assert inner.writes == [HEAD, HEAD] and inner.closing
    transport.write(HEAD)
    await asyncio.sleep(0)
    assert inner.writes == [HEAD, HEAD]


def test_serve_writes_heads_with_their_body(monkeypatch: pytest.MonkeyPatch) -> None:
    options: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: options.append(kwargs))
    before = gc.get_threshold()
    try:
        _server.run(argparse.Namespace(config=None, host=None, port=0, log_level="warning"))
    finally:
        gc.set_threshold(*before)
    assert options[0]["http"] is HeadWithBodyProtocol
