"""`triage serve`'s process-level pieces (issue 8: the collector under 2,000 held streams)."""

from __future__ import annotations

import argparse
import gc
from typing import Any

import pytest
import uvicorn

from triage._types import Message, Receive, Scope, Send
from triage.app._serving import GC_GEN0_THRESHOLD, FreezeAfterStartup
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
