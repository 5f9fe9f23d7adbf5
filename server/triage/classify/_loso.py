"""Leave-one-source-out: how the local classifier routes a source it never saw, which is what a new user's traffic
is to it. Scoring a held-out split of the sources it trained on measures memory, not generalisation (issue 16:
0.975 macro-F1 on the development test split, 0.83 on public request sets from elsewhere).

For each source, a head is fitted on every trainable row of the other sources plus the base rows (the project's
exemplars) and scores the source's rows. Their confidences come from one temperature fitted on all these
out-of-source logits together: the calibration a head trained with `train_head(groups=...)` gets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from triage.classify._data import balanced_weights
from triage.classify._evaluation import Routed
from triage.classify.local._features import Encoder, FeatureSpec, Featurizer
from triage.classify.local._head import Bags, fit_head, fit_temperature
from triage.classify.local._softmax import one_blas_thread

__all__ = ["LosoResult", "leave_one_source_out"]


@dataclass(frozen=True, slots=True)
class LosoResult:
    routed: list[Routed]  # one per row of `rows`, in order; `source` set
    temperature: float


def leave_one_source_out(
    rows: Sequence[Mapping[str, Any]],
    *,
    categories: Sequence[str],
    base: Sequence[tuple[str, str]] = (),
    base_weight: float = 1.0,
    balance: float | None = None,
    c: float = 10.0,
    spec: FeatureSpec | None = None,
    encoder: Encoder | None = None,
    seed: int = 0,
    bags: int = 1,
    progress: Callable[[str], None] | None = None,
) -> LosoResult:
    """`rows`: {"text", "label", "source"} and optionally "train" (False: an evaluation-only source, scored but never
    trained on) and "weight". `base`: (text, label) rows always trained on. `balance`: cap each source's total
    weight at this many rows (`balanced_weights`). `bags`: each head is that many averaged over sources (`Bags`)."""
    cats = tuple(categories)
    texts = [str(r["text"]) for r in rows] + [t for t, _ in base]
    labels = [str(r["label"]) for r in rows] + [label for _, label in base]
    sources = [str(r["source"]) for r in rows] + [""] * len(base)
    trainable = np.array([bool(r.get("train", True)) for r in rows] + [True] * len(base))
    caps = balanced_weights([s if t else "" for s, t in zip(sources, trainable, strict=True)], balance)
    given = [float(r.get("weight", 1.0)) for r in rows] + [base_weight] * len(base)
    weights = np.array([w * cap for w, cap in zip(given, caps, strict=True)])
    targets = np.array([cats.index(label) for label in labels], dtype=np.int64)
    featurizer = Featurizer(encoder or Encoder.load(), spec or FeatureSpec())
    batch = featurizer.batch(texts)
    source_of = np.array(sources)
    logits = np.zeros((len(rows), len(cats)))
    names = sorted({s for s in sources[: len(rows)]})
    with one_blas_thread():
        for name in names:
            held = np.flatnonzero(source_of[: len(rows)] == name)
            train = np.flatnonzero(trainable & (source_of != name))
            bagging = Bags(source_of[train], bags) if bags > 1 else None
            head = fit_head(batch.take(train), targets[train], weights[train], cats, featurizer.spec, c, seed,
                            bags=bagging)
            logits[held] = head.logits(batch.take(held))
            if progress is not None:
                progress(name)
    n = len(rows)
    temperature = fit_temperature(logits, targets[:n], np.ones(n))
    z = logits / temperature
    z -= z.max(axis=1, keepdims=True)
    probabilities = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    routed = [
        Routed(labels[i], cats[int(p.argmax())], float(p.max()), 0.0, sources[i])
        for i, p in enumerate(probabilities)
    ]
    return LosoResult(routed, temperature)
