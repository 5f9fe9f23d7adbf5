"""`triage serve`: the gateway under uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging

import uvicorn

from ._app import create_app
from ._config import TriageConfig, load_config
from ._exceptions import ConfigError

__all__ = ["check_open_access", "configure", "run"]

logger = logging.getLogger("triage")


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


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = args.host or config.server.host
    check_open_access(config, host)
    uvicorn.run(
        create_app(config),
        host=host,
        port=args.port if args.port is not None else config.server.port,
        log_level=args.log_level,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=int(config.server.shutdown_grace) + 1,
    )
    return 0
