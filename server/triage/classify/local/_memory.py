"""What reviewers corrected, acting at once: a request that nearly repeats one a reviewer corrected (cosine similarity
of their embeddings at least `similarity`) takes the reviewer's category, before any retrain has run.

Traffic repeats itself (the same order placed, the same account question asked in the same words), so a correction
fixes its near-duplicates immediately; retraining then generalises from it. Only near-duplicates are touched, so a
wrong correction reaches no further than its own phrasing, and the poisoning guard still judges every retrained
head. The memory keeps the most recent `size` corrections, one per request id (a later correction replaces an
earlier one).

Reads and writes never block each other: a write builds new arrays and swaps one reference, so a decision made in
a worker thread sees the memory before or after a correction, never half of one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CorrectionMemory"]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _Entries:
    keys: tuple[str, ...]
    vectors: F32  # (n, dim) unit rows
    categories: tuple[str, ...]


class CorrectionMemory:
    def __init__(self, *, similarity: float = 0.92, size: int = 10_000) -> None:
        self.similarity = similarity
        self.size = size
        self._entries = _Entries((), np.zeros((0, 0), dtype=np.float32), ())
        # The local classifier's encoder, bound when one is built around this memory (the embedding of a corrected
        # request must be the one its near-duplicates will be compared in).
        self._embed: Callable[[str], F32] | None = None

    def __len__(self) -> int:
        return len(self._entries.keys)

    def bind(self, embed: Callable[[str], F32]) -> None:
        self._embed = embed

    def remember(self, key: str, text: str, category: str) -> bool:
        """Add (or replace) the correction of request `key`; False when there is nothing to embed it with."""
        if self._embed is None or not text.strip() or self.size <= 0:
            return False
        vector = self._embed(text)
        if not vector.any():
            return False
        entries = self._entries
        keep = [i for i, k in enumerate(entries.keys) if k != key][-(self.size - 1) :] if self.size > 1 else []
        vectors = np.vstack([entries.vectors[keep], vector[None, :]]) if keep else vector[None, :].copy()
        self._entries = _Entries(
            (*(entries.keys[i] for i in keep), key), vectors, (*(entries.categories[i] for i in keep), category)
        )
        return True

    def recall(self, vector: F32) -> tuple[str, float] | None:
        """The category of the nearest corrected request and its similarity, if it is similar enough."""
        entries = self._entries
        if not entries.keys:
            return None
        similarities = entries.vectors @ vector
        best = int(similarities.argmax())
        similarity = float(similarities[best])
        return (entries.categories[best], similarity) if similarity >= self.similarity else None
