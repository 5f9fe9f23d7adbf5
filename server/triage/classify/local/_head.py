"""The local classifier's head: a linear softmax over the features, with a calibration temperature.

`train_head` fits it and calibrates it: k-fold out-of-fold logits (each text scored by a head that never saw it)
fix the temperature T that minimises their log-loss, so `confidence = max softmax(logits / T)` is a calibrated
probability (Guo et al. 2017, "On Calibration of Modern Neural Networks"). Scaling by 1/T keeps the order of the
logits, so the category is unchanged and confidence still grows with the margin.

A head saves to one `.npz` file of plain arrays (`allow_pickle=False` on load): weights, the categories, the
temperature, and a JSON spec of the features it expects. It holds no training text.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from triage._exceptions import ConfigError
from triage.classify.local._features import Batch, FeatureSpec, Featurizer
from triage.classify.local._prototypes import build_prototypes, prototype_features, prototype_features_loo
from triage.classify.local._softmax import Prior, fit_softmax, log_softmax, one_blas_thread

__all__ = ["FORMAT", "Bags", "Head", "fit_head", "fit_temperature", "train_head"]

FORMAT = "triage-head/1"


@dataclass(eq=False)
class Head:
    categories: tuple[str, ...]
    spec: FeatureSpec
    dense_w: npt.NDArray[np.float32]  # (dense_dim [+ 2 C prototype features], C)
    sparse_w: npt.NDArray[np.float32]  # (n_buckets, C): zero rows for buckets never seen in training
    bias: npt.NDArray[np.float32]
    prototypes: npt.NDArray[np.float32] | None = None  # (C, k, encoder dim)
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def dense_inputs(self, dense: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The featurizer's dense block, plus the prototype similarities when the head has prototypes."""
        if self.prototypes is None:
            return dense
        embedded = dense[:, : self.prototypes.shape[2]] / np.float32(self.spec.dense_weight)
        spec = self.spec
        similarities = prototype_features(embedded, self.prototypes, runs=spec.prototype_runs, top=spec.prototype_top)
        return np.hstack([dense, similarities * np.float32(self.spec.prototype_weight)])

    def logits(self, batch: Batch) -> npt.NDArray[np.float64]:
        """Raw (uncalibrated) scores, one row per text."""
        z = self.dense_inputs(batch.dense).astype(np.float64) @ self.dense_w + self.bias
        filled = np.diff(batch.indptr) > 0
        if filled.any():
            contributions = self.sparse_w[batch.indices] * batch.values[:, None]
            z[filled] += np.add.reduceat(contributions, batch.indptr[:-1][filled], axis=0)
        return z

    def calibrated(self, logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Calibrated probabilities from raw logits (any leading shape)."""
        # log_softmax's steps, in place: the same values with fewer arrays made.
        z = logits / self.temperature
        z -= z.max(axis=-1, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
        return np.exp(z, out=z)

    def calibrated_one(self, logits: npt.NDArray[np.float64]) -> list[float]:
        """`calibrated` of one text's logits, as floats: the same steps on a handful of Python floats, which cost
        under a third of five numpy calls on the request path. libm's exp and log may differ from numpy's in the last
        bit, so the two agree to within a few ulps (a test holds them to that)."""
        temperature = self.temperature
        z = [x / temperature for x in logits.tolist()]
        top = max(z)
        z = [x - top for x in z]
        log_total = math.log(sum([math.exp(x) for x in z]))
        return [math.exp(x - log_total) for x in z]

    def save(self, path: str | Path) -> None:
        rows = np.flatnonzero(np.any(self.sparse_w != 0, axis=1))
        meta = {"format": FORMAT, "spec": asdict(self.spec), "meta": self.meta}
        arrays: dict[str, Any] = {
            "categories": np.array(self.categories, dtype=str),
            "dense_w": self.dense_w,
            "sparse_rows": rows.astype(np.int32),
            "sparse_w": self.sparse_w[rows],
            "bias": self.bias,
            "temperature": np.array(self.temperature),
            "meta": np.array(json.dumps(meta)),
        }
        if self.prototypes is not None:  # unit vectors: half precision is plenty, and halves the file
            arrays["prototypes"] = self.prototypes.astype(np.float16)
        with open(path, "wb") as file:  # a file object: np.savez would append ".npz" to a bare name
            np.savez_compressed(file, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Head:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"classifier.head: cannot read {str(path)!r}: {exc}") from exc
        try:
            meta = json.loads(str(arrays["meta"]))
            if meta.get("format") != FORMAT:
                raise ConfigError(f"classifier.head: {str(path)!r} is not a {FORMAT} file")
            spec = FeatureSpec(**meta["spec"])
            spec.check()
            sparse_w = np.zeros((spec.n_buckets, len(arrays["categories"])), dtype=np.float32)
            sparse_w[arrays["sparse_rows"]] = arrays["sparse_w"]
            return cls(
                tuple(str(c) for c in arrays["categories"]),
                spec,
                arrays["dense_w"].astype(np.float32),
                sparse_w,
                arrays["bias"].astype(np.float32),
                arrays["prototypes"].astype(np.float32) if "prototypes" in arrays else None,
                float(arrays["temperature"]),
                dict(meta.get("meta", {})),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"classifier.head: {str(path)!r} is missing {exc}") from exc


@dataclass(frozen=True, slots=True)
class Bags:
    """Source bagging: `count` heads, averaged into one. The sources are dealt into `count` groups at random, and each
    member is fitted without one of them, so every source is missing from exactly one member.

    Each member learns less of any one source's conventions, and their mean keeps what the sources agree on. The mean
    of linear heads on the same features is one linear head, so the decision costs what one head costs.
    `groups`: each training row's source; rows with an empty group (the project's exemplars) are in every member.
    """

    groups: npt.NDArray[np.str_]
    count: int = 4

    def take(self, rows: npt.NDArray[np.int64]) -> Bags:
        return Bags(self.groups[rows], self.count)

    def members(self, seed: int) -> list[npt.NDArray[np.int64]]:
        """Each member's training rows."""
        if self.count < 2 or len({g for g in self.groups if g}) < self.count:
            return [np.arange(len(self.groups))]
        left_out = _group_folds(self.groups.tolist(), self.count, seed)  # the calibration folds' dealing
        return [np.flatnonzero(left_out != m) for m in range(self.count)]


def fit_temperature(
    logits: npt.NDArray[np.float64], targets: npt.NDArray[np.int64], weights: npt.NDArray[np.float64]
) -> float:
    """The T minimising the weighted log-loss of softmax(logits / T); golden-section search on log T."""
    sample = weights / weights.sum()

    def nll(log_t: float) -> float:
        logp = log_softmax(logits / np.exp(log_t))
        return -float((sample * logp[np.arange(len(targets)), targets]).sum())

    lo, hi = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def _folds(targets: npt.NDArray[np.int64], k: int, seed: int) -> npt.NDArray[np.int64]:
    """Stratified fold numbers: each category spread evenly over the k folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(targets), dtype=np.int64)
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        fold[members] = np.arange(len(members)) % k
    return fold


def _group_folds(groups: Sequence[str], k: int, seed: int) -> npt.NDArray[np.int64]:
    """Fold numbers that keep each group (a data source) whole: a row is scored by a head that saw nothing of its
    source. Rows without a group (the project's exemplars) are never held out: -1."""
    names = sorted({g for g in groups if g})
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: n % k for n, i in enumerate(order)}
    return np.array([fold_of.get(g, -1) for g in groups], dtype=np.int64)


def train_head(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    sample_weight: Sequence[float] | None = None,
    categories: Sequence[str] | None = None,
    featurizer: Featurizer | None = None,
    spec: FeatureSpec | None = None,
    c: float = 10.0,
    folds: int = 5,
    seed: int = 0,
    prior: Head | None = None,
    groups: Sequence[str] | None = None,
    bags: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Head:
    """Fit a head on labeled texts (weighted by `sample_weight`, e.g. reviewed corrections above base data) and
    calibrate it on k-fold out-of-fold logits (`folds < 2`: no calibration, T = 1).

    `groups`: each text's source. The folds then hold out whole sources, so the temperature is fitted on how the
    head does on sources it never saw, as a new user's traffic is, not on rows of sources it knows (which made it
    confident where it should not be: issue 16). Texts with an empty group are always trained on.
    `bags`: with `groups`, fit this many heads, each without its own share of the sources, and average them
    (`Bags`).

    `featurizer`: reuse a loaded one (the encoder takes ~0.1 s to load); its spec wins over `spec`.
    `prior`: a previous head (same categories and features) to shrink towards instead of zero: a refit on new data
    (exemplars + corrections) then keeps what the previous head learnt from data it no longer has.
    `progress`: called with a short note after each stage (the CLI drives a progress bar with it).
    """
    started = time.perf_counter()
    note = progress or (lambda _stage: None)
    if categories is not None:
        cats = tuple(categories)
    else:
        cats = prior.categories if prior is not None else tuple(sorted(set(labels)))
    unknown = sorted(set(labels) - set(cats))
    if unknown:
        raise ValueError(f"labels not among the categories {list(cats)}: {unknown}")
    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    if prior is not None:
        if prior.categories != cats:
            raise ValueError(f"the prior head's categories {list(prior.categories)} differ from {list(cats)}")
        spec = prior.spec
    if featurizer is None:
        from triage.classify.local._features import Encoder

        featurizer = Featurizer(Encoder.load(), spec or FeatureSpec())
    elif prior is not None and featurizer.spec != prior.spec:
        raise ValueError("the featurizer's spec differs from the prior head's")
    shrink = None if prior is None else Prior(prior.dense_w, prior.sparse_w, prior.bias)
    targets = np.array([cats.index(label) for label in labels], dtype=np.int64)
    weights = np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != targets.shape or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("sample_weight must hold one non-negative weight per text, not all zero")
    batch = featurizer.batch(texts)
    note("features")
    with one_blas_thread():
        fold = None
        if folds >= 2 and len(targets) >= 2 * folds:
            if groups is not None and len({g for g in groups if g}) >= 2:
                fold = _group_folds(groups, min(folds, len({g for g in groups if g})), seed)
            else:
                fold = _folds(targets, folds, seed)
        bagging = Bags(np.array(groups, dtype=str), bags) if groups is not None and bags > 1 else None
        head = _fit_and_calibrate(
            batch, targets, weights, cats, featurizer.spec, c, fold, seed, shrink, prior, bagging, note
        )

    head.meta = {
        "examples": len(texts),
        "per_category": {cat: int((targets == i).sum()) for i, cat in enumerate(cats)},
        "c": c,
        "folds": folds,
        "calibration": "out of source" if groups is not None and len({g for g in groups if g}) >= 2 else "k-fold",
        "bags": bagging.count if bagging is not None else 1,
        "out_of_fold_accuracy": head.meta["out_of_fold_accuracy"],
        "prior": prior is not None,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return head


def _fit_and_calibrate(
    batch: Batch,
    targets: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64],
    cats: tuple[str, ...],
    spec: FeatureSpec,
    c: float,
    fold: npt.NDArray[np.int64] | None,
    seed: int,
    shrink: Prior | None,
    prior: Head | None,
    bags: Bags | None,
    note: Callable[[str], None],
) -> Head:
    """`fold`: each row's fold (-1: always trained on); None: no calibration."""
    temperature, oof_accuracy = 1.0, None
    if fold is not None:
        folds = int(fold.max()) + 1
        oof = np.zeros((len(targets), len(cats)))
        for k in range(folds):
            train, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            part = fit_head(batch.take(train), targets[train], weights[train], cats, spec, c, seed, shrink, prior,
                            bags.take(train) if bags is not None else None)
            oof[held] = part.logits(batch.take(held))
            note(f"fold {k + 1}/{folds}")
        scored = fold >= 0
        temperature = fit_temperature(oof[scored], targets[scored], weights[scored])
        oof_accuracy = float((oof[scored].argmax(axis=1) == targets[scored]).mean())
    head = fit_head(batch, targets, weights, cats, spec, c, seed, shrink, prior, bags)
    note("fit")
    head.temperature = temperature
    head.meta = {"out_of_fold_accuracy": oof_accuracy}
    return head


def fit_head(
    batch: Batch,
    targets: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64],
    cats: tuple[str, ...],
    spec: FeatureSpec,
    c: float,
    seed: int,
    shrink: Prior | None = None,
    prior: Head | None = None,
    bags: Bags | None = None,
) -> Head:
    """A head fitted on `batch` (no calibration: temperature 1). `shrink`: the weights the penalty pulls towards;
    `prior`: the head whose hashed weights fill the buckets `batch` never touches; `bags`: fit several heads on subsets
    of the sources and average them (see `Bags`)."""
    prototypes = None
    if spec.prototypes > 0:
        if spec.dense_weight <= 0:
            raise ValueError("prototypes need the embedding block: dense_weight must be > 0")
        dim = batch.dense.shape[1] - spec.n_lexical
        embedded = batch.dense[:, :dim] / np.float32(spec.dense_weight)
        prototypes = build_prototypes(
            embedded, targets, len(cats), spec.prototypes, runs=spec.prototype_runs, seed=seed
        )
        # Rounded as `save` stores them, so a head scores the same before and after a round trip.
        prototypes = prototypes.astype(np.float16).astype(np.float32)
        similarities = prototype_features_loo(
            embedded, targets, prototypes, runs=spec.prototype_runs, top=spec.prototype_top
        )
        dense = np.hstack([batch.dense, similarities * np.float32(spec.prototype_weight)])
        batch = Batch(dense.astype(np.float32), batch.indptr, batch.indices, batch.values)
    # Buckets the data never touched keep the prior's weights (zero without a prior).
    untouched = prior.sparse_w if prior is not None else np.zeros((spec.n_buckets, len(cats)), dtype=np.float32)
    members = [np.arange(len(targets))] if bags is None else bags.members(seed)
    dense_w = np.zeros((batch.dense.shape[1], len(cats)), dtype=np.float32)
    sparse_w = np.zeros_like(untouched)
    bias = np.zeros(len(cats), dtype=np.float32)
    for rows in members:
        part = batch if len(rows) == len(targets) else batch.take(rows)
        fit = fit_softmax(part, targets[rows], weights[rows], len(cats), c=c, prior=shrink)
        member_sparse = untouched.copy()
        member_sparse[fit.sparse_columns] = fit.sparse_w
        dense_w += fit.dense_w
        sparse_w += member_sparse
        bias += fit.bias
    # Linear heads on the same features: the mean of their logits is the logits of their mean.
    n = np.float32(len(members))
    return Head(cats, spec, dense_w / n, sparse_w / n, bias / n, prototypes)
