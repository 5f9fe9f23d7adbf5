"""`triage db upgrade`: apply the store's schema migrations (PostgreSQL with `store.url`; the SQLite file's schema
otherwise). `triage serve` applies them at start too; this is for a deployment step that runs before instances."""

from __future__ import annotations

import argparse
import asyncio

from triage._config import load_config
from triage.learn import upgrade_schema

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply every schema migration not applied yet")
    upgrade.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    applied, version = asyncio.run(upgrade_schema(config.store))
    where = "PostgreSQL (store.url)" if config.store.url is not None else f"SQLite {config.store.path}"
    if applied:
        print(f"{where}: applied migrations {', '.join(map(str, applied))}; schema at version {version}")
    else:
        print(f"{where}: schema up to date at version {version}")
    return 0
