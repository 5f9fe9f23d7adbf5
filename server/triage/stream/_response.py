"""The SSE response both dialects send: sse-starlette's, tuned for the first token and for many open streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError

from triage._types import Message, Receive, Scope, Send

__all__ = ["EventStream"]

logger = logging.getLogger("triage.stream")


class EventStream(EventSourceResponse):
    """sse-starlette's response, with four changes:

    - The first event goes out at once, before sse-starlette starts its tasks (ping, disconnect and shutdown
      listeners, under one task group): it carries the answer's first token, and starting four tasks ahead of it
      cost ~0.3 ms of time to first token (bench/overhead.py profile). The stream then goes on as usual.
    - Each send is bounded by asyncio's timeout rather than an anyio cancel scope: the same bound, for a fraction
      of the set-up, once per upstream read of every answer.
    - A client that stopped reading is dropped quietly: past `send_timeout` the send fails with SendTimeoutError,
      which is Triage doing its job, not an error to log with a traceback.
    - Once done, it lets go of the answer (see `__call__`).
    """

    # Called once the first event is out (the time-to-first-token metric): nothing on the way to it that need not be.
    after_first_event: Callable[[], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._send_head(send)
            await super().__call__(scope, receive, without_start(send))
        except SendTimeoutError:
            logger.info("dropped a client that read nothing for %ss", self.send_timeout)
            if self.background is not None:
                await self.background()  # skipped by the base class when the stream fails: close the upstream
        finally:
            # sse-starlette's cancelled ping and shutdown tasks leave a reference cycle (their CancelledError's
            # traceback holds frames that hold this response) that only the garbage collector frees. Letting go
            # of the answer here frees its chunks, upstream response and accounting at once instead (cyclic
            # garbage per request ~180 -> ~115 objects, none of them the answer's): less for each collection.
            del self.body_iterator
            self.background = None

    async def _send_head(self, send: Send) -> None:
        """The response start and the first event (when there is one: the stream's encoders always yield it)."""
        body = aiter(self.body_iterator)
        first = await anext(body, None)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if first is not None:
            assert isinstance(first, bytes), "Triage's encoders yield encoded events"
            await self._send_with_timeout(send, {"type": "http.response.body", "body": first, "more_body": True})
        if self.after_first_event is not None:
            self.after_first_event()

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        try:
            async with asyncio.timeout(self.send_timeout):
                await send(message)
        except TimeoutError:
            raise SendTimeoutError from None


def without_start(send: Send) -> Send:
    """`send` for sse-starlette once `EventStream` has started the response itself."""

    async def sender(message: Message) -> None:
        if message["type"] != "http.response.start":
            await send(message)

    return sender
