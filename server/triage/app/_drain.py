"""Server shutdown for streams in flight: each gets a grace period, then an explicit error event."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from triage.stream import Answer

__all__ = ["Drain"]


class Drain:
    """Ends the answers still streaming `grace` seconds after the server began to shut down, so each client gets
    an explicit error event before the server goes. sse-starlette sets `event` on shutdown (every response shares
    it); one task waits for it on behalf of all answers, not one task per answer."""

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._answers: weakref.WeakSet[Answer[Any]] = weakref.WeakSet()  # a finished answer just drops out
        self._event: anyio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def event(self) -> anyio.Event:
        """The shutdown event to hand every response (made in `start`: an anyio.Event needs the running loop)."""
        assert self._event is not None, "Drain.start() first"
        return self._event

    def start(self) -> None:
        self._event = anyio.Event()
        self._task = asyncio.ensure_future(self._drain())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def track(self, answer: Answer[Any]) -> None:
        self._answers.add(answer)

    async def _drain(self) -> None:
        await self.event.wait()
        await asyncio.sleep(self._grace)
        for answer in list(self._answers):
            if not answer.closed:
                # Closing the upstream makes the encoder's iteration fail; it sees `drained` and says why.
                answer.drained = True
                await answer.stream.aclose()
