"""What retraining fits and judges on, and the seam to the local classifier's training code.

`Trainer` is all `triage._retrain` needs of a head: fit, predict, save, load. `default_trainer` adapts the local
classifier's own code (`triage._train.train_head`, `Head`, `triage._local.LocalClassifier`); tests and benchmarks
can pass any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from triage._config import TriageConfig

__all__ = [
    "HEAD_FILE",
    "BaseData",
    "HeadTrainer",
    "Trainer",
    "base_data",
    "default_head_path",
    "default_trainer",
    "load_exemplars",
    "macro_f1",
]

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
    # True when the evaluation set is a file of its own (`eval.jsonl`), which no head is trained on; False when it
    # is cut from the exemplars, which the shipped default head did train on.
    eval_independent: bool = False


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
    return BaseData([t for t, _ in train], [c for _, c in train], [t for t, _ in held], [c for _, c in held], source,
                    eval_independent=eval_file.exists())


def _jsonl(path: Path) -> list[tuple[str, str]]:
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [(str(r["text"]), str(r["label"])) for r in rows]


def macro_f1(truth: Sequence[str], predicted: Sequence[str | None], categories: Sequence[str]) -> float:
    """Unweighted mean of per-category F1 over the categories present in `truth` or `predicted` (a None
    prediction, no category at all, only counts against recall)."""
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


HEAD_FILE = "head.npz"


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """The head's matrices are small: on a busy 2-core machine OpenBLAS's threads only fight each other (a
    3,700-example fit took 10 s with the default threads, 1.6 s with one; a test run 63 s against 9 s)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # ships no py.typed
    except ImportError:  # optional: without it, OPENBLAS_NUM_THREADS=1 in the environment does the same
        return contextlib.nullcontext()
    limits: contextlib.AbstractContextManager[object] = threadpool_limits(limits=1, user_api="blas")
    return limits


def default_head_path(config: TriageConfig) -> Path | None:
    """The head the `default` version means: `classifier.head`, else the one shipped in the package (if any)."""
    if config.classifier.head is not None:
        return Path(config.classifier.head)
    shipped = _data_file(HEAD_FILE)
    return shipped if shipped.exists() else None


class HeadTrainer:
    """`Trainer` on the local classifier's own code (`triage._head`, `triage._features`): one encoder, loaded
    once. A head saves to `<version>/head.npz`.

    Fits shrink towards a `prior` head (`train_head(prior=...)`; by default the default head, when one exists)
    instead of towards zero: the shipped head learnt from a development set whose text cannot ship, and a refit on
    the exemplars alone would throw that away. `prior=None` fits from scratch."""

    def __init__(
        self, config: TriageConfig, *, progress: bool = False, prior: Any = "default"
    ) -> None:
        from triage.classify.local._features import Encoder

        self.config = config
        self.categories = tuple(config.categories)
        self.encoder = Encoder.load()
        self.progress = progress
        self._prior = prior

    @property
    def prior(self) -> Any:
        if isinstance(self._prior, str):  # "default": loaded on first use
            from triage.classify.local._head import Head

            path = default_head_path(self.config)
            self._prior = Head.load(path) if path is not None else None
        return self._prior

    @prior.setter
    def prior(self, head: Any) -> None:
        self._prior = head

    def _featurizer(self, spec: Any = None) -> Any:
        from triage.classify.local._features import FeatureSpec, Featurizer

        return Featurizer(self.encoder, spec if spec is not None else FeatureSpec())

    def fit(self, texts: Sequence[str], labels: Sequence[str], weights: Sequence[float]) -> Any:
        from tqdm import tqdm

        from triage.classify.local._head import train_head

        prior = self.prior
        featurizer = self._featurizer(prior.spec if prior is not None else None)
        with _one_blas_thread(), tqdm(total=7, desc="fitting head", unit=" step", disable=not self.progress,
                                      leave=False) as bar:

            def step(stage: str) -> None:
                bar.set_postfix_str(stage)
                bar.update()

            return train_head(texts, labels, sample_weight=weights, categories=self.categories,
                              featurizer=featurizer, prior=prior, progress=step)

    def predict(self, head: Any, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        with _one_blas_thread():
            logits = head.logits(self._featurizer(head.spec).batch(texts))
        return [head.categories[i] for i in logits.argmax(axis=1)]

    def save(self, head: Any, directory: Path) -> None:
        head.save(directory / HEAD_FILE)

    def load(self, directory: Path | None) -> Any:
        from triage.classify.local._head import Head

        if directory is not None:
            return Head.load(directory / HEAD_FILE)
        if self.prior is not None:
            return self.prior
        # No head ships: the default is what the exemplars alone train.
        base = base_data()
        return self.fit(base.train_texts, base.train_labels, [1.0] * len(base.train_texts))


def default_trainer(config: TriageConfig, *, progress: bool = False) -> Trainer:
    return HeadTrainer(config, progress=progress)
