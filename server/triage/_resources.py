"""Files shipped inside the package (`triage/data/`): the demo configs, the exemplars, the default head."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["data_file"]


def data_file(name: str) -> Path:
    """The path of `triage/data/<name>` ("" for the folder itself)."""
    return Path(str(resources.files("triage") / "data" / name))
