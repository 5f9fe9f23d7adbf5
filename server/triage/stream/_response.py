"""The SSE response both dialects send: a pure ASGI streaming response, lean enough for many open streams.

It does what sse-starlette's `EventSourceResponse` did for Triage (SSE headers, keep-alive pings, a bound on each
send, the upstream closed when the client goes), without its task group: that started four tasks per stream
(producer, ping, disconnect listener, shutdown listener), each with an anyio cancel scope, an anyio Event per
stream for shutdown, and a cancel scope per send. At 64-256 open streams on 2 cores that machinery was ~15% of
Triage's CPU per answer (bench/overhead.py, py-spy; issue 18), in a process that was then the bottleneck. Here:

- The producer is the response's own task: the first event goes out with the response start, then each event
  as the encoder yields it (the chunks of one upstream read are one event: one write).
- A client that disconnects: one listener task (the request's own, handed over by the app: the one that watched
  while the model was asked) waits for `http.disconnect` and cancels the producer, whose
  `finally` closes the body (the encoder closes the upstream request at once).
- Keep-alive and the send bound: one timer per stream, every `min(ping, send_timeout / 2)` seconds. It sends a
  ping comment when nothing went out for `ping` seconds, and drops a client whose send has been stuck (the
  transport paused: the client stopped reading) for `send_timeout`, by cancelling the producer; uvicorn then
  closes the connection. No timer per send.
- Shutdown: the gateway's `Drain` ends every answer still streaming after the grace period (its encoder then
  sends an explicit error event and the stream ends as usual); uvicorn cancels what is left after its own
  graceful timeout.

Not compressed or buffered (STYLE.md 4): `Cache-Control: no-store`, `X-Accel-Buffering: no`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import Response

from triage._types import Receive, Scope, Send

__all__ = ["RAW_SEND", "EventStream"]

# A scope key: the server's own `send`, which a serving process may hand the stream for the events after the
# response start, past the framework's send wrappers (they only watch for the start). See app/_serving.py.
RAW_SEND = "triage.raw_send"

logger = logging.getLogger("triage.stream")

_PING = b": ping\n\n"
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


class EventStream(Response):
    """An SSE response over `body` (encoded events, bytes). `background` runs once the stream ends, however it
    ends (the answer's `aclose`: an encoder the server never started never runs its own `finally`)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncIterable[bytes],
        *,
        headers: Mapping[str, str],
        ping: float,
        send_timeout: float,
        background: Callable[[], Awaitable[None]] | None = None,
        listener: asyncio.Future[Any] | None = None,
    ) -> None:
        # Not Response.__init__: no body to render, and the headers are known. Starlette reads only these.
        self.status_code = 200
        self.body_iterator = body
        own = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = [*_HEADERS, *own]
        self.background = None  # Starlette's BackgroundTask slot; ours is `_close`, run in `__call__`
        self._close = background
        # A pending `receive()` the request already has (the app's DisconnectWatch), else one is made here.
        self._listener = listener
        self._ping = ping
        self._send_timeout = send_timeout

    # Called once the first event is out (the time-to-first-token metric): nothing on the way to it that need not be.
    after_first_event: Callable[[], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        stream = _Streaming(task, scope.get(RAW_SEND) or send, self._ping, self._send_timeout)
        body = aiter(self.body_iterator)
        listener = self._listener
        self._listener = None
        try:
            first = await anext(body, None)
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            stream.arm()  # the first send is bounded too
            if first is not None:
                await stream.send(first)
            if self.after_first_event is not None:
                self.after_first_event()
            if listener is None:  # after the first event: nothing ahead of it that need not be
                listener = asyncio.ensure_future(receive())
            listener.add_done_callback(stream.disconnected)
            async for data in body:
                await stream.send(data)
            await stream.end()
        except asyncio.CancelledError:
            # Ours (the client left, or stopped reading) and only ours: the stream ends here, quietly.
            if stream.reason is None or task.uncancel() > 0:
                raise
            if stream.reason == "send_timeout":
                logger.info("dropped a client that read nothing for %ss", self._send_timeout)
        finally:
            stream.disarm()
            if listener is not None:
                listener.remove_done_callback(stream.disconnected)
                listener.cancel()
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if self._close is not None:
                await self._close()
            # Let go of the answer at once (its chunks, upstream response and accounting), not when the response is.
            del self.body_iterator
            self._close = None


class _Streaming:
    """One stream's sends, its keep-alive timer, and why it was stopped, if it was."""

    __slots__ = ("_busy_since", "_ended", "_final", "_last", "_loop", "_ping", "_ping_since", "_pinger", "_send",
                 "_send_timeout", "_task", "_tick", "_timer", "reason")

    def __init__(self, task: asyncio.Task[Any], send: Send, ping: float, send_timeout: float) -> None:
        self._task = task
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._ping = ping
        self._send_timeout = send_timeout
        self._tick = min(ping, send_timeout / 2)
        self._timer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._last = self._loop.time()  # when the last send ended
        self._busy_since: float | None = None  # when the event's send in progress began
        self._ping_since: float | None = None  # when the ping's send in progress began
        self._final = False  # the last message is on its way: no more pings
        self._ended = False  # the stream is over: nothing to watch
        self.reason: str | None = None  # "disconnect" | "send_timeout": why the stream was cancelled

    async def send(self, data: bytes) -> None:
        loop = self._loop
        self._busy_since = loop.time()
        await self._send({"type": "http.response.body", "body": data, "more_body": True})
        self._busy_since = None
        self._last = loop.time()

    async def end(self) -> None:
        self._final = True
        if self._pinger is not None and not self._pinger.done():
            await self._pinger  # the response's last message must be its last
        self._busy_since = self._loop.time()  # still bounded: the watchdog runs until the stream is over
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        self._busy_since = None
        self._ended = True

    def arm(self) -> None:
        self._timer = self._loop.call_later(self._tick, self._check)

    def disarm(self) -> None:
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pinger is not None and not self._pinger.done():
            self._pinger.cancel()

    def _stop(self, reason: str) -> None:
        if self.reason is None and not self._ended:
            self.reason = reason
            self._task.cancel()

    def disconnected(self, listener: asyncio.Future[Any]) -> None:
        if listener.cancelled() or listener.exception() is not None:
            return
        if listener.result().get("type") == "http.disconnect":
            self._stop("disconnect")

    def _check(self) -> None:
        """The keep-alive tick: drop a client whose send is stuck, else ping one that heard nothing for a while."""
        if self._ended:
            return
        now = self._loop.time()
        busy = [t for t in (self._busy_since, self._ping_since) if t is not None]
        if busy and now - min(busy) >= self._send_timeout:
            self._stop("send_timeout")
            return
        if not busy and not self._final and now - self._last >= self._ping:
            self._pinger = asyncio.ensure_future(self._send_ping())
        self._timer = self._loop.call_later(self._tick, self._check)

    async def _send_ping(self) -> None:
        if self._final:
            return
        self._ping_since = self._loop.time()
        await self._send({"type": "http.response.body", "body": _PING, "more_body": True})
        self._ping_since = None
        self._last = self._loop.time()
