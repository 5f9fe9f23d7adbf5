"""The SSE response both dialects send (stream/_response.py, issue 18): a pure ASGI stream with one listener task
and one keep-alive timer per stream, in place of sse-starlette's task group. Driven with a scripted receive/send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from triage._types import Message
from triage.app._serving import FreezeAfterStartup
from triage.stream import RAW_SEND, EventStream

SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}


class Client:
    """A scripted ASGI peer: `receive` blocks until `leave()`; every message sent is kept."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.gone = asyncio.Event()
        self.stuck = asyncio.Event()  # set: every send from now on blocks (a client that stopped reading)

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.stuck.is_set() and message["type"] == "http.response.body":
            await asyncio.Event().wait()
        self.messages.append(message)

    def leave(self) -> None:
        self.gone.set()

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]


def events(*items: bytes | float, closed: list[str] | None = None) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        try:
            for item in items:
                if isinstance(item, float):
                    await asyncio.sleep(item)
                else:
                    yield item
        finally:
            if closed is not None:
                closed.append("closed")

    return body()


def response(body: AsyncIterator[bytes], *, ping: float = 15, send_timeout: float = 30,
             closed: list[str] | None = None, listener: asyncio.Future[Any] | None = None) -> EventStream:
    async def close() -> None:
        if closed is not None:
            closed.append("background")

    return EventStream(body, headers={"x-triage-model": "cheap"}, ping=ping, send_timeout=send_timeout,
                       background=close, listener=listener)


async def test_a_whole_stream_start_events_end() -> None:
    client, closed = Client(), []
    await response(events(b"event: a\n\n", b"event: b\n\n"), closed=closed)(SCOPE, client.receive, client.send)
    start = client.messages[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-store" and headers[b"x-accel-buffering"] == b"no"
    assert headers[b"x-triage-model"] == b"cheap"
    assert client.bodies == [b"event: a\n\n", b"event: b\n\n", b""]
    assert client.messages[-1]["more_body"] is False
    assert closed == ["background"]


async def test_events_after_the_start_go_to_the_servers_own_send() -> None:
    """`triage serve` (FreezeAfterStartup) hands the stream the server's send: the start still passes the app's
    wrappers, the events go past them."""
    wrapped, raw = Client(), Client()
    scope = {**SCOPE, RAW_SEND: raw.send}
    await response(events(b"event: a\n\n"))(scope, wrapped.receive, wrapped.send)
    assert [m["type"] for m in wrapped.messages] == ["http.response.start"]
    assert raw.bodies == [b"event: a\n\n", b""]

    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    server_send = Client().send
    await FreezeAfterStartup(app)({"type": "http"}, wrapped.receive, server_send)
    assert seen[0][RAW_SEND] is server_send


async def test_a_client_that_leaves_ends_the_stream_at_once() -> None:
    client, closed = Client(), []
    stream = response(events(b"event: a\n\n", 30.0, b"event: late\n\n", closed=closed), closed=closed)
    task = asyncio.ensure_future(stream(SCOPE, client.receive, client.send))
    await asyncio.sleep(0.05)
    client.leave()
    await asyncio.wait_for(task, 1)  # returns quietly: not cancelled, no error
    assert client.bodies == [b"event: a\n\n"]
    assert closed == ["closed", "background"]  # the body's finally (the upstream closed), then the background


async def test_the_requests_listener_is_taken_over_and_a_disconnect_it_saw_ends_the_stream() -> None:
    """The app hands over the `receive()` that watched while the model was asked (DisconnectWatch): the stream
    makes no listener of its own, and a disconnect that listener saw before the stream started ends it after the
    first event."""
    client, closed = Client(), []
    listener: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    listener.set_result({"type": "http.disconnect"})
    calls = 0

    async def receive() -> Message:
        nonlocal calls
        calls += 1
        return await client.receive()

    stream = response(events(b"event: a\n\n", 30.0, b"event: late\n\n", closed=closed), closed=closed,
                      listener=listener)
    await asyncio.wait_for(stream(SCOPE, receive, client.send), 1)
    assert client.bodies == [b"event: a\n\n"] and calls == 0
    assert closed == ["closed", "background"]


async def test_a_quiet_stream_is_pinged() -> None:
    client = Client()
    await response(events(b"event: a\n\n", 0.35, b"event: b\n\n"), ping=0.1)(SCOPE, client.receive, client.send)
    assert client.bodies[0] == b"event: a\n\n" and client.bodies[-2:] == [b"event: b\n\n", b""]
    assert b": ping\n\n" in client.bodies[1:-2]


async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout() -> None:
    client, closed = Client(), []
    stream = response(events(b"event: a\n\n", 0.05, b"event: b\n\n", 30.0, closed=closed), send_timeout=0.2,
                      closed=closed)
    client.stuck.set()
    client.messages.clear()
    started = asyncio.get_running_loop().time()
    task = asyncio.ensure_future(stream(SCOPE, client.receive, client.send))
    await asyncio.wait_for(task, 2)  # dropped quietly
    assert 0.2 <= asyncio.get_running_loop().time() - started < 1.0
    assert closed == ["closed", "background"]


async def test_a_cancellation_that_is_not_ours_propagates() -> None:
    client, closed = Client(), []
    task = asyncio.ensure_future(
        response(events(b"event: a\n\n", 30.0, closed=closed), closed=closed)(SCOPE, client.receive, client.send)
    )
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the server's cancellation was swallowed")
    assert closed == ["closed", "background"]


async def test_the_last_send_is_bounded_too() -> None:
    """A client that stops reading just as the answer ends: the closing send waits no longer than send_timeout."""
    client, closed = Client(), []

    async def body() -> AsyncIterator[bytes]:
        yield b"event: a\n\n"
        client.stuck.set()  # from the next send on (the closing one), nothing drains

    task = asyncio.ensure_future(response(body(), send_timeout=0.2, closed=closed)(SCOPE, client.receive, client.send))
    await asyncio.wait_for(task, 2)
    assert client.bodies == [b"event: a\n\n"] and closed == ["background"]
