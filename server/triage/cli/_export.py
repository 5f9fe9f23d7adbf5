"""`triage export --out FILE.jsonl`: the store's decisions and corrections as JSON lines (see
`triage.learn._export` for the format)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from triage._config import load_config
from triage._exceptions import InvalidRequest
from triage.app import parse_time
from triage.learn import export

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", required=True, help="JSONL file to write ('-': standard output)")
    parser.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")
    parser.add_argument("--since", help="only decisions made from then on (unix seconds or ISO 8601)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.store.url is None and not Path(config.store.path).exists():
        print(f"triage export: no store at {config.store.path!r} (store.path)", file=sys.stderr)
        return 1
    try:
        since = parse_time(args.since, param="--since") if args.since else None
    except InvalidRequest as exc:
        print(f"triage export: {exc.message}", file=sys.stderr)
        return 2
    if args.out == "-":
        decisions, corrections = asyncio.run(export(config, sys.stdout, since=since, progress=False))
    else:
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                decisions, corrections = asyncio.run(export(config, f, since=since, progress=sys.stderr.isatty()))
            # Renamed into place only when complete: a reader never sees half an export.
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    print(f"exported {decisions} decisions and {corrections} corrections", file=sys.stderr)
    return 0
