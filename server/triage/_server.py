"""`triage serve`: the gateway under uvicorn."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging

import uvicorn

from triage._app import create_app
from triage._config import TriageConfig, load_config
from triage._exceptions import ConfigError
from triage._types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FreezeAfterStartup", "check_open_access", "configure", "run"]

logger = logging.getLogger("triage")

# The collector's youngest-generation threshold (CPython's default: 700). At 2,000 held streams the default promoted
# objects that live a few hundred ms (per chunk) into the old generation, which then filled its 25% quota every ~3 s
# and forced a full collection: 0.6 s of CPU each, 2.5 s of CPU per 10 s. With 10,000 they die young instead: full
# collections went from 45 to 2 in a 3-minute soak, collector CPU to 0.66 s per 10 s, the worst loop stall per 10 s
# from 1.4 s to 0.6 s on average, time to first token p50 696 -> 213 ms, p99 4.3 -> 1.9 s (issue 8; RSS the same).
GC_GEN0_THRESHOLD = 10_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")
    parser.add_argument("--host", help="bind address (default: server.host from the config)")
    parser.add_argument("--port", type=int, help="port (default: server.port from the config)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_open_access(config: TriageConfig, host: str) -> None:
    """With no client keys Triage is open to anyone who can reach it: allowed on loopback only."""
    if not config.auth.keys:
        if not is_loopback(host):
            raise ConfigError(
                f"auth.keys is empty (open access) but server.host is {host!r}: configure client keys, or bind "
                "to 127.0.0.1"
            )
        logger.warning("no client keys configured: open access, bound to loopback (%s) only", host)


class FreezeAfterStartup:
    """Once the app has started, move every object alive then (modules, config, classifier, SDK types: ~195k) to
    the collector's permanent generation, so a full collection under load walks only the requests' own objects.

    Issue 8: at 2,000 held streams a full collection in `triage serve` took 0.3-2 s of wall time on a loaded 2-core
    machine, stalling the event loop; idle upstream connections closed by the provider meanwhile were then reused
    and failed. What is alive at start-up lives as long as the app; one such object dropped later is still freed by
    reference counting (only a reference cycle among frozen objects would be kept).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_frozen(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()  # start-up garbage is freed first, not frozen for good
                gc.freeze()
            await send(message)

        await self.app(scope, receive, send_frozen)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = args.host or config.server.host
    check_open_access(config, host)
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    uvicorn.run(
        FreezeAfterStartup(create_app(config)),
        host=host,
        port=args.port if args.port is not None else config.server.port,
        log_level=args.log_level,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=int(config.server.shutdown_grace) + 1,
    )
    return 0
