"""An answer in flight: the live upstream stream plus its accounting, settled and closed exactly once.

Both SSE encoders close it in their `finally`; the response also closes it as a background task, because an async
generator the server never started (the client left between our `return` and the first send) never runs its
`finally`, and the upstream request would stay open until garbage collection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

from triage._gateway import StreamTally
from triage._limits import Lease
from triage.upstream._stream import ModelStream

__all__ = ["Answer"]

R = TypeVar("R")

# Closing the upstream must happen even inside a cancelled scope, but must not pin a worker if the provider hangs.
_CLOSE_TIMEOUT = 5.0


class Answer(Generic[R]):
    def __init__(self, stream: ModelStream, settle: Callable[[StreamTally, str], R], lease: Lease | None) -> None:
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
        with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await self.stream.aclose()
        self.settle("cancelled")
        if self._lease is not None:
            self._lease.release()
