"""The store's decisions and corrections as JSON lines (`triage export`).

Each line is one object with a `type`: `decision` (every DecisionRecord field) or `correction` (every Correction
field). Decisions come first, in the order they were written, then corrections. The text of a request is there
only if the store kept it (`store.text: full`, within `store.retention_days`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import IO

from tqdm import tqdm

from triage._config import TriageConfig
from triage.learn._open import open_store

__all__ = ["export"]


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
