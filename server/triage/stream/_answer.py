"""An answer in flight: the live upstream stream plus its accounting, settled and closed exactly once.

Both SSE encoders close it in their `finally`; the response also closes it as a background task, because an async
generator the server never started (the client left between our `return` and the first send) never runs its
`finally`, and the upstream request would stay open until garbage collection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from triage.route import Usage, estimate_tokens
from triage.upstream import Chunk, ModelStream, completion_chars

__all__ = ["Answer", "Releasable", "StreamTally"]

R = TypeVar("R")


class Releasable(Protocol):
    """What an answer holds until it closes: the request's concurrency slot (the app's `Lease`)."""

    def release(self) -> None: ...


@dataclass(slots=True)
class StreamTally:
    """What passes through a stream that accounting needs: usage (reported or estimated)."""

    usage: Usage | None = None
    completion_chars: int = 0
    finish_reason: str | None = None

    def observe(self, chunk: Chunk) -> None:
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        self.completion_chars += completion_chars(chunk)
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def final_usage(self, prompt_chars: int) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(estimate_tokens(prompt_chars), estimate_tokens(self.completion_chars), estimated=True)


class Answer(Generic[R]):
    def __init__(self, stream: ModelStream, settle: Callable[[StreamTally, str], R], lease: Releasable | None) -> None:
        self.stream = stream
        # Set when a server shutdown ended this answer: its encoder then reports `ShuttingDown`, not a cut.
        self.drained = False
        self.tally = StreamTally()
        self._settle = settle
        self._lease = lease
        self._result: tuple[R] | None = None
        self._closed = False

    @property
    def model(self) -> str:
        return self.stream.model

    @property
    def closed(self) -> bool:
        return self._closed

    def settle(self, status: str) -> R:
        """Account for the answer with `status` (ok | upstream_error | cancelled); later calls return the first
        result."""
        if self._result is None:
            self._result = (self._settle(self.tally, status),)
        return self._result[0]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stream.close()
        self.settle("cancelled")
        if self._lease is not None:
            self._lease.release()
