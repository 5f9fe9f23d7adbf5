"""What retraining fits and judges on, and the seam to the local classifier's training code.

`Trainer` is all `triage._retrain` needs of a head: fit, predict, save, load. `default_trainer` adapts the local
classifier's own code (`triage._train.train_head`, `Head`, `triage._local.LocalClassifier`); tests and benchmarks
can pass any other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from ._config import TriageConfig

__all__ = ["BaseData", "Trainer", "base_data", "default_trainer", "load_exemplars", "macro_f1"]

# Share of the exemplars kept aside as the evaluation set when no evaluation file ships.
_EXEMPLAR_HOLDOUT = 0.2


class Trainer(Protocol):
    def fit(self, texts: Sequence[str], labels: Sequence[str], weights: Sequence[float]) -> Any:
        """A new head fitted on the texts."""
        ...

    def predict(self, head: Any, texts: Sequence[str]) -> list[str]: ...

    def save(self, head: Any, directory: Path) -> None: ...

    def load(self, directory: Path | None) -> Any:
        """The head saved in `directory`; None: the default head (the configured or shipped one)."""
        ...


@dataclass(frozen=True, slots=True)
class BaseData:
    train_texts: list[str]
    train_labels: list[str]
    eval_texts: list[str]  # the shipped evaluation set: the guard against poisoning judges on it
    eval_labels: list[str]
    source: str  # where the evaluation set came from, for reports


def _data_file(name: str) -> Path:
    return Path(str(resources.files("triage") / "data" / name))


def load_exemplars(path: Path | None = None) -> list[tuple[str, str]]:
    """(text, category) pairs from the exemplars file: `{category: {group: [text, ...]}}` (or a flat list)."""
    raw = yaml.safe_load((path or _data_file("exemplars.yaml")).read_text(encoding="utf-8")) or {}
    pairs: list[tuple[str, str]] = []
    for category, groups in raw.items():
        texts = groups if isinstance(groups, list) else [t for group in groups.values() for t in group]
        pairs.extend((str(t), str(category)) for t in texts)
    return pairs


def _held_out(text: str) -> bool:
    digest = hashlib.sha256(text.strip().lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < _EXEMPLAR_HOLDOUT


def base_data(directory: Path | None = None) -> BaseData:
    """The exemplars (+ `base.jsonl` if it ships) to train on; `eval.jsonl` to judge on if it ships, else a fixed
    held-out fifth of the exemplars (then left out of training, so both heads are judged on unseen text)."""
    folder = directory or _data_file("")
    pairs = load_exemplars(folder / "exemplars.yaml")
    base_file = folder / "base.jsonl"
    if base_file.exists():
        pairs += _jsonl(base_file)
    eval_file = folder / "eval.jsonl"
    if eval_file.exists():
        held, source = _jsonl(eval_file), "eval.jsonl"
        train = pairs
    else:
        held = [p for p in pairs if _held_out(p[0])]
        train = [p for p in pairs if not _held_out(p[0])]
        source = "exemplars (held-out fifth)"
    return BaseData([t for t, _ in train], [c for _, c in train], [t for t, _ in held], [c for _, c in held], source)


def _jsonl(path: Path) -> list[tuple[str, str]]:
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [(str(r["text"]), str(r["label"])) for r in rows]


def macro_f1(truth: Sequence[str], predicted: Sequence[str], categories: Sequence[str]) -> float:
    """Unweighted mean of per-category F1 over the categories present in `truth` or `predicted`."""
    present = [c for c in categories if c in truth or c in predicted]
    if not present:
        return 0.0
    total = 0.0
    for c in present:
        tp = sum(t == c and p == c for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != c and p == c for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == c and p != c for t, p in zip(truth, predicted, strict=True))
        total += 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return total / len(present)


def default_trainer(config: TriageConfig, *, progress: bool = False) -> Trainer:
    raise NotImplementedError("the local classifier's training code (triage._train) is not there yet")
