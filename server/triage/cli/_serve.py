"""`triage serve`: the gateway under uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from triage._config import load_config
from triage.app import FreezeAfterStartup, check_open_access, create_app, tune_gc

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")
    parser.add_argument("--host", help="bind address (default: server.host from the config)")
    parser.add_argument("--port", type=int, help="port (default: server.port from the config)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = args.host or config.server.host
    check_open_access(config, host)
    tune_gc()
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
