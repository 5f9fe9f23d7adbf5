"""`triage serve`: the gateway under uvicorn, in one process or in `--workers N` (uvicorn's own supervisor: it
restarts a worker that dies, and every worker accepts on the one listening socket).

Before any worker starts, the PostgreSQL store's schema is brought up to date here, once: a wrong `store.url` or
password stops the command with a message naming the setting (exit 2), not N workers with N tracebacks. Each
worker applies the migrations again at its start (a no-op then), so an instance started alone is just as safe.

Workers are processes: what one process kept to itself (rate limits, slots, cooldowns) is per worker unless
`redis.url` is set; decisions and head versions go to the store all workers share (the SQLite file on one host,
or PostgreSQL); `/metrics` on any worker reports the sum of all (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import tempfile

import uvicorn

from triage._config import load_config
from triage._logging import configure_logging, log_config
from triage.app import (
    WORKER_CONFIG_ENV,
    FreezeAfterStartup,
    HeadWithBodyProtocol,
    check_open_access,
    create_app,
    tune_gc,
)
from triage.learn import upgrade_schema

__all__ = ["configure", "run"]

logger = logging.getLogger("triage")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")
    parser.add_argument("--host", help="bind address (default: server.host from the config)")
    parser.add_argument("--port", type=int, help="port (default: server.port from the config)")
    parser.add_argument("--workers", "-w", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["text", "json"],
                        help="json: one JSON object a line, with the request id (default: server.log_format)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    fmt = getattr(args, "log_format", None) or config.server.log_format
    workers = getattr(args, "workers", 1)
    configure_logging(args.log_level, fmt)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    check_open_access(config, host)
    if workers < 1:
        raise SystemExit("triage serve: --workers must be at least 1")
    if config.store.url is not None:  # (the SQLite file gets its schema as the store opens)
        applied, version = asyncio.run(upgrade_schema(config.store))  # ConfigError: exit 2, naming the setting
        if applied:
            logger.info("store schema: applied migrations %s; at version %d", applied, version)
    common = {
        "host": host, "port": port, "log_level": args.log_level, "log_config": log_config(args.log_level, fmt),
        "loop": "auto", "http": HeadWithBodyProtocol,  # httptools, with each response head sent with its body
        "timeout_graceful_shutdown": int(config.server.shutdown_grace) + 1,
    }
    if workers == 1:
        tune_gc()
        uvicorn.run(FreezeAfterStartup(create_app(config)), **common)
        return 0
    if config.redis.url is None:
        logger.warning("%d workers without redis.url: rate limits, concurrency slots and cooldowns are per worker",
                       workers)
    # The workers are spawned (fresh interpreters): they read the config file and these variables again.
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    own_dir = metrics_dir is None
    if own_dir:
        metrics_dir = tempfile.mkdtemp(prefix="triage-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[WORKER_CONFIG_ENV] = os.path.abspath(args.config) if args.config else ""
    try:
        uvicorn.run("triage.app._serving:worker_app", factory=True, workers=workers, **common)
    finally:
        if own_dir and metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
