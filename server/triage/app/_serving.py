"""How one process serves the app well under load: the collector tuned for many open streams, and start-up objects
frozen out of its way (issue 8's soak); and the app of each worker under `triage serve --workers N`."""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from triage._types import ASGIApp, Message, Receive, Scope, Send
from triage.stream import RAW_SEND

__all__ = [
    "GC_GEN0_THRESHOLD",
    "WORKER_CONFIG_ENV",
    "FreezeAfterStartup",
    "HeadWithBodyProtocol",
    "MarkDeadOnExit",
    "tune_gc",
    "worker_app",
]

# The collector's youngest-generation threshold (CPython's default: 700). At 2,000 held streams the default promoted
# objects that live a few hundred ms (per chunk) into the old generation, which then filled its 25% quota every ~3 s
# and forced a full collection: 0.6 s of CPU each, 2.5 s of CPU per 10 s. With 10,000 they died young instead: full
# collections went from 45 to 2 in a 3-minute soak, time to first token p50 696 -> 213 ms, p99 4.3 -> 1.9 s (issue 8).
# The count that triggers a young collection is allocations minus deallocations, and a serving process in a steady
# state allocates about as much as it frees: the count wanders rather than grows, so the higher the bar, the rarer
# (more than proportionally) the collections. At 256 streams, 10,000 -> 50,000 took young collections from 46 to 4
# per 3,256 answers and the collector's CPU from 55 to 13 us per answer (5% of Triage's CPU per answer), for a pause
# of ~11 ms instead of ~3 ms when one does run (issue 18).
GC_GEN0_THRESHOLD = 50_000


class FreezeAfterStartup:
    """Once the app has started, move every object alive then (modules, config, classifier, SDK types: ~195k) to
    the collector's permanent generation, so a full collection under load walks only the requests' own objects.

    Issue 8: at 2,000 held streams a full collection in `triage serve` took 0.3-2 s of wall time on a loaded 2-core
    machine, stalling the event loop; idle upstream connections closed by the provider meanwhile were then reused
    and failed. What is alive at start-up lives as long as the app; one such object dropped later is still freed by
    reference counting (only a reference cycle among frozen objects would be kept).

    It also puts the server's own `send` in each HTTP scope (`RAW_SEND`), for the body of an event stream: each
    event otherwise passes two of Starlette's send wrappers, which only watch for the response start (that still
    goes through them), a few microseconds per upstream read of every answer (issue 18). Only `triage serve` wraps
    the app like this, so a host app's middleware (TriageMiddleware) always sees every message.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_frozen(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()  # start-up garbage is freed first, not frozen for good
                gc.freeze()
            await send(message)

        await self.app(scope, receive, send_frozen)


def tune_gc() -> None:
    """Raise the youngest generation's threshold to `GC_GEN0_THRESHOLD` (see there for why)."""
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


# `triage serve --workers N` hands each spawned worker its config file through the environment (cli/_serve.py).
WORKER_CONFIG_ENV = "TRIAGE_SERVE_CONFIG"


def worker_app() -> ASGIApp:
    """The app of one `--workers` worker (uvicorn's factory): the config `serve` was given, the collector tuned."""
    from triage._config import load_config
    from triage.app._app import create_app

    path = os.environ.get(WORKER_CONFIG_ENV) or None
    tune_gc()
    return MarkDeadOnExit(FreezeAfterStartup(create_app(load_config(path))))


class MarkDeadOnExit:
    """At the end of a worker's lifespan its live gauges leave the multiprocess metrics (its counters stay)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class HeadWithBodyProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with each response head written together with the first body write after it.

    uvicorn writes the head the moment the app sends `http.response.start`, and the body on the next message: two
    writes, and on loopback each write that wakes the client costs about 0.25 ms (the client runs at once and
    parses the head while Triage waits to send the body). An event stream's head goes out only with its first
    token (the headers-after-first-token rule), so both writes sat on every answer's time to first token; joined,
    the answer's first event costs one write and one wake-up (bench/peers.py, issue 18: -0.18 ms at c=1).

    The head waits at most until the end of the event loop's current iteration: every response sends its first
    body message in the same step as its start (Starlette's responses, the event stream), and anything else
    flushes it. Only `triage serve` uses this; an app served elsewhere gets its server's own writes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_HeadHeldTransport(transport))  # type: ignore[arg-type]


class _HeadHeldTransport:
    """A connection's transport that holds a response head back until the next write, or the end of the loop's
    iteration, whichever comes first. Everything else is the transport's own."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[:9] == b"HTTP/1.1 ":  # a response head (a chunk-encoded body write starts with its size)
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():  # the client left meanwhile: nothing to write to
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
