"""Prototype similarities: how close a request's embedding is to each category's nearest clusters of examples.

A linear head on a mean-pooled embedding draws one hyperplane per category; requests of one category that sit in
several separate regions of the embedding space (weather questions, playlist edits, bookings) need more. Each
category's training embeddings are clustered (spherical k-means) into a few prototypes, and the head also sees, per
category, the best and the mean of the top 3 cosine similarities to that category's prototypes: the nearest-neighbour
signal semantic-router's utterance matching uses, compressed to centroids (averages over many examples: weights,
not text). Measured on dev.jsonl: macro-F1 from exemplars alone to all of dev 0.88 -> 0.91, leave-one-source-out
0.85 -> 0.87, on the test split 0.964 -> 0.973. Three clusterings with different seeds, averaged, keep k-means'
seeding from moving the test figure by +-0.004 from one training to the next.

On training rows a prototype's similarity is computed as if the row were not in its own cluster (the centroid is
recomputed without it), so the head does not learn to trust a self-similarity it will never see at serving time.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["build_prototypes", "prototype_features", "prototype_features_loo"]

F32 = npt.NDArray[np.float32]


def _cluster_sums(x: F32, assigned: npt.NDArray[np.int64], k: int) -> F32:
    """The sum of the rows of `x` assigned to each of `k` clusters: a one-hot product, which BLAS runs far faster
    than np.add.at's row-by-row scatter (1.8 s of a 26k-request fit)."""
    members = np.zeros((k, len(x)), dtype=x.dtype)
    members[assigned, np.arange(len(x))] = 1.0
    sums: F32 = members @ x
    return sums


def _spherical_kmeans(x: F32, k: int, *, seed: int, iterations: int = 15) -> F32:
    """k unit centroids of unit rows `x` (k-means++ seeding on cosine distance)."""
    n = len(x)
    k = min(k, n)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    distance = 1.0 - x @ x[chosen[0]]
    for _ in range(k - 1):
        weights = np.maximum(distance, 0.0).astype(np.float64)
        total = weights.sum()
        j = int(rng.choice(n, p=weights / total)) if total > 0 else int(rng.integers(n))
        chosen.append(j)
        distance = np.minimum(distance, 1.0 - x @ x[j])
    centres = x[chosen].copy()
    for _ in range(iterations):
        assigned = (x @ centres.T).argmax(axis=1)
        sums = _cluster_sums(x, assigned, len(centres))
        norms = np.linalg.norm(sums, axis=1)
        moved = norms > 0
        centres[moved] = sums[moved] / norms[moved, None]
    return centres.astype(np.float32)


def build_prototypes(
    embeddings: F32, targets: npt.NDArray[np.int64], n_classes: int, k: int, *, runs: int = 1, seed: int = 0
) -> F32:
    """(n_classes, runs * k, dim) unit prototypes: `runs` independent clusterings of k, side by side (their
    features are averaged, which smooths out k-means' dependence on its seeding). A category with fewer than k
    examples repeats its last one."""
    dim = embeddings.shape[1]
    out = np.zeros((n_classes, runs * k, dim), dtype=np.float32)
    for c in range(n_classes):
        members = embeddings[targets == c]
        members = members[np.linalg.norm(members, axis=1) > 0]
        if len(members) == 0:
            continue
        for run in range(runs):
            centres = _spherical_kmeans(members, k, seed=seed + 1000 * run + c)
            block = out[c, run * k : (run + 1) * k]
            block[: len(centres)] = centres
            block[len(centres) :] = centres[-1]
    return out


@functools.cache
def _summary_weights(n_classes: int, runs: int, top: int) -> F32:
    """(n_classes * runs * top, 2 * n_classes): from each run's `top` best similarities of each category, sorted
    ascending, to the category's mean best and mean top-`top` similarity over the runs."""
    weights = np.zeros((n_classes, runs, top, n_classes, 2), dtype=np.float32)
    for c in range(n_classes):
        weights[c, :, -1, c, 0] = 1.0 / runs
        weights[c, :, :, c, 1] = 1.0 / (runs * top)
    weights.flags.writeable = False
    return weights.reshape(n_classes * runs * top, 2 * n_classes)


def _summarise(similarities: F32, n_classes: int, runs: int, top: int, out: F32 | None = None) -> F32:
    """(..., 2 * n_classes) from (..., n_classes * runs * k) similarities (one row, or n): per category, the best
    and the top-`top` mean similarity within each run's prototypes, averaged over the runs. One sort over every
    category at once, then one product that sums and averages: a request is scored on the event loop, with other
    work between requests evicting the CPU caches, where each numpy call costs microseconds. `out`: a C-contiguous
    float32 array of the result's shape to write into."""
    lead = similarities.shape[:-1]
    best = np.sort(similarities.reshape(*lead, n_classes * runs, -1))[..., -top:]
    return np.matmul(best.reshape(*lead, -1), _summary_weights(n_classes, runs, top), out=out)


def prototype_features(
    embeddings: F32, prototypes: F32, *, runs: int = 1, top: int = 3, out: F32 | None = None
) -> F32:
    """Per category: the best and the top-`top` mean cosine similarity to its prototypes: (2 * n_classes,) for one
    embedding, (n, 2 * n_classes) for n. `out`: a C-contiguous float32 array of that shape to write them into."""
    n_classes, _, dim = prototypes.shape
    similarities = embeddings @ prototypes.reshape(-1, dim).T  # a view: every category's prototypes in one product
    return _summarise(similarities, n_classes, runs, top, out)


def prototype_features_loo(
    embeddings: F32, targets: npt.NDArray[np.int64], prototypes: F32, *, runs: int = 1, top: int = 3
) -> F32:
    """`prototype_features` for the rows the prototypes were built from: each row's similarity to its own
    cluster's centroid (in each run) is taken with the row left out of that centroid."""
    n_classes, per_class, dim = prototypes.shape
    similarities = embeddings @ prototypes.reshape(-1, dim).T
    k = per_class // runs
    for c, class_prototypes in enumerate(prototypes):
        members = np.flatnonzero(targets == c)
        for run in range(runs if len(members) else 0):
            centres = class_prototypes[run * k : (run + 1) * k]
            own = embeddings[members]
            assigned = (own @ centres.T).argmax(axis=1)
            sums = _cluster_sums(own, assigned, len(centres))
            without = sums[assigned] - own
            norms = np.linalg.norm(without, axis=1)
            left_out = np.where(norms > 1e-9, (without * own).sum(axis=1) / np.maximum(norms, 1e-9), 0.0)
            similarities[members, c * per_class + run * k + assigned] = left_out
    return _summarise(similarities, n_classes, runs, top)
