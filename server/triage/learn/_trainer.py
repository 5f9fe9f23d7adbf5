"""What retraining fits and judges on, and the seam to the local classifier's training code.

`Trainer` is all `triage.learn._retrain` needs of a head: fit, predict, save, load. `default_trainer` adapts the
local classifier's own code (`triage.classify.local`: `train_head`, `Head`); tests and benchmarks can pass any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from triage._config import TriageConfig
from triage._resources import data_file
from triage.classify import load_exemplars, read_jsonl
from triage.classify.local._softmax import one_blas_thread

__all__ = ["HEAD_FILE", "BaseData", "HeadTrainer", "Trainer", "base_data", "default_trainer", "default_version_head"]

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


def _held_out(text: str) -> bool:
    digest = hashlib.sha256(text.strip().lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < _EXEMPLAR_HOLDOUT


def _pairs(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(r["text"]), str(r["label"])) for r in rows]


def base_data(directory: Path | None = None) -> BaseData:
    """The exemplars (+ `base.jsonl` if it ships) to train on; `eval.jsonl` to judge on if it ships, else a fixed
    held-out fifth of the exemplars (then left out of training, so both heads are judged on unseen text)."""
    folder = directory or data_file("")
    pairs = load_exemplars(folder / "exemplars.yaml")
    base_file = folder / "base.jsonl"
    if base_file.exists():
        pairs += _pairs(read_jsonl(base_file))
    eval_file = folder / "eval.jsonl"
    if eval_file.exists():
        held, source = _pairs(read_jsonl(eval_file)), "eval.jsonl"
        train = pairs
    else:
        held = [p for p in pairs if _held_out(p[0])]
        train = [p for p in pairs if not _held_out(p[0])]
        source = "exemplars (held-out fifth)"
    return BaseData([t for t, _ in train], [c for _, c in train], [t for t, _ in held], [c for _, c in held], source,
                    eval_independent=eval_file.exists())


HEAD_FILE = "head.npz"


def default_version_head(config: TriageConfig) -> Path | None:
    """The head the `default` version means: `classifier.head`, else the one shipped in the package (if any)."""
    if config.classifier.head is not None:
        return Path(config.classifier.head)
    shipped = data_file(HEAD_FILE)
    return shipped if shipped.exists() else None


class HeadTrainer:
    """`Trainer` on the local classifier's own code (`triage.classify.local`): one encoder, loaded
    once. A head saves to `<version>/head.npz`.

    Fits shrink towards a `prior` head (`train_head(prior=...)`; by default the default head, when one exists)
    instead of towards zero: the shipped head learnt from a development set whose text cannot ship, and a refit on
    the exemplars alone would throw that away. `prior=None` fits from scratch."""

    def __init__(
        self, config: TriageConfig, *, progress: bool = False, prior: Any = "default"
    ) -> None:
        from triage.classify.local import Encoder

        self.config = config
        self.categories = tuple(config.categories)
        self.encoder = Encoder.load()
        self.progress = progress
        self._prior = prior

    @property
    def prior(self) -> Any:
        if isinstance(self._prior, str):  # "default": loaded on first use
            from triage.classify import Head

            path = default_version_head(self.config)
            self._prior = Head.load(path) if path is not None else None
        return self._prior

    @prior.setter
    def prior(self, head: Any) -> None:
        self._prior = head

    def _featurizer(self, spec: Any = None) -> Any:
        from triage.classify.local import FeatureSpec, Featurizer

        return Featurizer(self.encoder, spec if spec is not None else FeatureSpec())

    def fit(self, texts: Sequence[str], labels: Sequence[str], weights: Sequence[float]) -> Any:
        from tqdm import tqdm

        from triage.classify import train_head

        prior = self.prior
        featurizer = self._featurizer(prior.spec if prior is not None else None)
        with one_blas_thread(), tqdm(total=7, desc="fitting head", unit=" step", disable=not self.progress,
                                      leave=False) as bar:

            def step(stage: str) -> None:
                bar.set_postfix_str(stage)
                bar.update()

            # A refit of a prior keeps the prior's temperature: that one was fitted on sources the prior never saw
            # (issue 16), while k-fold calibration on the exemplars and corrections would be fitted on text like the
            # training text, and make the head sure of itself on unfamiliar traffic again. It also spares 5 fits.
            head = train_head(texts, labels, sample_weight=weights, categories=self.categories,
                              featurizer=featurizer, prior=prior, folds=0 if prior is not None else 5, progress=step)
            if prior is not None:
                head.temperature = prior.temperature
            return head

    def predict(self, head: Any, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        with one_blas_thread():
            logits = head.logits(self._featurizer(head.spec).batch(texts))
        return [head.categories[i] for i in logits.argmax(axis=1)]

    def save(self, head: Any, directory: Path) -> None:
        head.save(directory / HEAD_FILE)

    def load(self, directory: Path | None) -> Any:
        from triage.classify import Head

        if directory is not None:
            return Head.load(directory / HEAD_FILE)
        if self.prior is not None:
            return self.prior
        # No head ships: the default is what the exemplars alone train.
        base = base_data()
        return self.fit(base.train_texts, base.train_labels, [1.0] * len(base.train_texts))


def default_trainer(config: TriageConfig, *, progress: bool = False) -> Trainer:
    return HeadTrainer(config, progress=progress)
