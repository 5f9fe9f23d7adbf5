"""Server shutdown for streams in flight: each gets a grace period, then an explicit error event."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import weakref
from typing import TYPE_CHECKING, Any

from sse_starlette.sse import AppStatus  # importing it also hooks uvicorn's exit handler (sets should_exit)

if TYPE_CHECKING:
    from triage.stream import Answer

__all__ = ["Drain", "shutting_down"]

# How often the drain looks for a shutdown: a stream's grace starts at most this late.
_POLL = 0.25


def shutting_down() -> bool:
    """Whether the server began to shut down: uvicorn's `should_exit`, seen through sse-starlette's hook on its exit
    handler, or on the uvicorn server whose bound method handles SIGTERM (where the hook did not take: the same two
    sources sse-starlette's own watcher reads)."""
    if AppStatus.should_exit:
        return True
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return bool(getattr(server, "should_exit", False))


class Drain:
    """Ends the answers still streaming `grace` seconds after the server began to shut down, so each client gets
    an explicit error event before the server goes (uvicorn itself waits `shutdown_grace` + 1 s, then cancels).
    One task watches for the shutdown on behalf of all answers, not one task per answer."""

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._answers: weakref.WeakSet[Answer[Any]] = weakref.WeakSet()  # a finished answer just drops out
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
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
        while not shutting_down():  # noqa: ASYNC110  (nothing to wait on: uvicorn sets a plain attribute)
            await asyncio.sleep(_POLL)
        await asyncio.sleep(self._grace)
        for answer in list(self._answers):
            if not answer.closed:
                # Closing the upstream makes the encoder's iteration fail; it sees `drained` and says why.
                answer.drained = True
                answer.stream.close()
