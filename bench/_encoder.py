"""The routing half of `bench/peers.py`: Triage's classifier against semantic-router on the same labelled split.

Filled in once Triage's local classifier (`triage._local`) exists; until then the comparison reports itself
skipped. Nothing here runs when the file itself is executed (`make bench` runs bench/*.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

__all__ = ["REQUIREMENTS", "routing_report"]

# Packages the encoder needs inside bench/.venv, so semantic-router wraps the very same encoder.
REQUIREMENTS: list[str] = []


def routing_report(data: Path, peers_python: Path, *, quick: bool, deadline: float) -> dict[str, Any]:
    if importlib.util.find_spec("triage._local") is None:
        print("\nrouting decisions: skipped, Triage's local classifier (triage._local) is not there yet")
        return {"skipped": "triage._local is not there yet"}
    raise NotImplementedError
