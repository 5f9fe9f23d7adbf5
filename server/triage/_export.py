"""`triage export --out FILE.jsonl`: the store's decisions and corrections as JSON lines.

Each line is one object with a `type`: `decision` (every DecisionRecord field) or `correction` (every Correction
field). Decisions come first, in the order they were written, then corrections. The text of a request is there
only if the store kept it (`store.text: full`, within `store.retention_days`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import IO

from tqdm import tqdm

from triage._config import TriageConfig, load_config
from triage._exceptions import InvalidRequest
from triage._feedback import parse_time
from triage._sqlite_store import open_store

__all__ = ["configure", "export", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", required=True, help="JSONL file to write ('-': standard output)")
    parser.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")
    parser.add_argument("--since", help="only decisions made from then on (unix seconds or ISO 8601)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if not Path(config.store.path).exists():
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


async def export(
    config: TriageConfig, out: IO[str], *, since: float | None = None, progress: bool = False
) -> tuple[int, int]:
    """Write the store's decisions, then its corrections, to `out`; returns how many of each."""
    decisions = 0
    async with open_store(config.store) as store:
        with tqdm(desc="decisions", unit=" rows", disable=not progress) as bar:
            async for record in store.iter_decisions(since=since):
                data = dataclasses.asdict(record)
                out.write(json.dumps({"type": "decision", **data}, ensure_ascii=False) + "\n")
                decisions += 1
                bar.update()
        corrections = await store.corrections(since=since)
        for correction in corrections:
            data = dataclasses.asdict(correction)
            out.write(json.dumps({"type": "correction", **data}, ensure_ascii=False) + "\n")
    return decisions, len(corrections)
