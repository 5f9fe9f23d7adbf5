"""`triage serve`: the gateway under uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from ._app import create_app
from ._config import load_config

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")
    parser.add_argument("--host", help="bind address (default: server.host from the config)")
    parser.add_argument("--port", type=int, help="port (default: server.port from the config)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(config),
        host=args.host or config.server.host,
        port=args.port if args.port is not None else config.server.port,
        log_level=args.log_level,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=int(config.server.send_timeout),
    )
    return 0
