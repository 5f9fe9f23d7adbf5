"""How one process serves the app well under load: the collector tuned for many open streams, and start-up objects
frozen out of its way (issue 8's soak); and the app of each worker under `triage serve --workers N`."""

from __future__ import annotations

import gc
import os

from triage._types import ASGIApp, Message, Receive, Scope, Send
from triage.stream import RAW_SEND

__all__ = [
    "GC_GEN0_THRESHOLD",
    "WORKER_CONFIG_ENV",
    "FreezeAfterStartup",
    "MarkDeadOnExit",
    "tune_gc",
    "worker_app",
]

# The collector's youngest-generation threshold (CPython's default: 700). At 2,000 held streams the default promoted
# objects that live a few hundred ms (per chunk) into the old generation, which then filled its 25% quota every ~3 s
# and forced a full collection: 0.6 s of CPU each, 2.5 s of CPU per 10 s. With 10,000 they die young instead: full
# collections went from 45 to 2 in a 3-minute soak, collector CPU to 0.66 s per 10 s, the worst loop stall per 10 s
# from 1.4 s to 0.6 s on average, time to first token p50 696 -> 213 ms, p99 4.3 -> 1.9 s (issue 8; RSS the same).
GC_GEN0_THRESHOLD = 10_000


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
