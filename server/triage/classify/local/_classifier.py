"""The `local` classifier: static-embedding encoder + lexical signals + hashed n-grams, a linear softmax head, and a
calibrated confidence (see `_features` and `_head`).

    LocalClassifier.load()                 # the shipped default head (triage/data/head.npz)
    LocalClassifier.load("heads/v0003/head.npz", categories=config.categories)
    LocalClassifier.from_config(config)    # classifier.head, or the default

A request's prior user turns steer a follow-up ("and in Python?") without overruling a clear new request: when the
last turn reads as a follow-up (`_lexical.follow_up_score`: a connective, or short and pointing back), its logits
get the prior turns' evidence (their logits minus the bias) added: the most recent at `CONTEXT_WEIGHT` (halved when
the follow-up is sure of itself alone), older ones decaying. Measured on dev.jsonl's test split with synthetic
conversations: a clear request after an unrelated turn keeps its route 96.7% of the time (97.5% alone); a vague
follow-up after a turn of its topic takes that topic's route 96.7% (67% alone). Blending every turn by the last
one's uncertainty alone dragged clear requests along far more (75% kept at a weight giving 95% on follow-ups).

Work per text is bounded (`_features.clip_text`): ~0.2 ms for a typical request, ~1.5 ms at the cap. `classify`
runs inline on the event loop unless the turns add up to more than `_INLINE_CHARS`; then it goes to a thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from triage._exceptions import ConfigError
from triage._resources import data_file
from triage.classify._decision import ClassifyInput, Decision, LayerTiming
from triage.classify.local._features import CLIPPED_CHARS as _CLIPPED
from triage.classify.local._features import Encoder, Featurizer, clip_text
from triage.classify.local._head import Head
from triage.classify.local._lexical import follow_up_score, lexical_features, strip_politeness
from triage.classify.local._memory import CorrectionMemory
from triage.classify.local._prototypes import prototype_features

if TYPE_CHECKING:
    from triage._config import TriageConfig

__all__ = ["CONTEXT_DECAY", "CONTEXT_WEIGHT", "LocalClassifier", "default_head_path"]

# Weight of the most recent prior turn's evidence relative to a follow-up's own, and the factor per older turn.
CONTEXT_WEIGHT = 1.0
CONTEXT_DECAY = 0.5
# Beyond this many characters over all turns (each clipped as the features clip it), classification may take over
# a millisecond (~0.7 ms per 1,000 characters here): run it in a thread.
_INLINE_CHARS = 1200
# A prior turn only lends its topic: its opening is enough, and keeps a long conversation cheap to classify.
_PRIOR_CHARS = 500


def default_head_path() -> Path:
    return data_file("head.npz")


class LocalClassifier:
    name = "local"

    def __init__(
        self,
        head: Head,
        encoder: Encoder | None = None,
        *,
        context_weight: float = CONTEXT_WEIGHT,
        context_decay: float = CONTEXT_DECAY,
        memory: CorrectionMemory | None = None,
    ) -> None:
        self.head = head
        # `encoder` by that name: benchmarks look the encoder up on the classifier to compare routers on it.
        self.encoder = encoder or Encoder.load()
        # Reviewers' corrections, consulted before the head (see `_memory`); shared with the gateway, which adds to it.
        self.memory = memory
        if memory is not None:
            memory.bind(self.encoder.embed_one)
        self.featurizer = Featurizer(self.encoder, head.spec)
        self.context_weight = context_weight
        self.context_decay = context_decay
        spec = head.spec
        # The dense blocks' weights (each block's, element by element) and the bias folded into one float64 matrix:
        # the feature vector, with a trailing 1, times this is the dense logits in one product.
        blocks = [(self.encoder.dim, spec.dense_weight), (spec.n_lexical, spec.lexical_weight)]
        if head.prototypes is not None:
            blocks.append((2 * len(head.categories), spec.prototype_weight))
        scales = np.concatenate([np.full(n, w) for n, w in blocks])
        self._dense_w = np.vstack([scales[:, None] * head.dense_w, head.bias]).astype(np.float64)
        self._sparse_scale = float(spec.sparse_weight)

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        categories: Sequence[str] | None = None,
        encoder: Encoder | None = None,
        memory: CorrectionMemory | None = None,
    ) -> LocalClassifier:
        """The head at `path` (None: the shipped default). `categories`, if given, must be the head's (any order)."""
        file = Path(path) if path is not None else default_head_path()
        if not file.exists():
            raise ConfigError(f"classifier.head: no head at {str(file)!r} (train one: triage train --help)")
        head = Head.load(file)
        if categories is not None and set(categories) != set(head.categories):
            raise ConfigError(
                f"classifier.head: the head decides between {sorted(head.categories)}, the routes are "
                f"{sorted(categories)}: retrain it on the routes' categories (triage train)"
            )
        return cls(head, encoder, memory=memory)

    @classmethod
    def from_config(cls, config: TriageConfig, *, memory: CorrectionMemory | None = None) -> LocalClassifier:
        return cls.load(config.classifier.head, categories=config.categories, memory=memory)

    @property
    def categories(self) -> Sequence[str]:
        return self.head.categories

    def logits(self, text: str) -> npt.NDArray[np.float64]:
        """Raw logits of one text (the fast path: no batch bookkeeping)."""
        text = clip_text(text)
        head = self.head
        # One float32 vector that each block is written into in place (embedding, lexical, prototype similarities, a
        # 1 for the bias), then one product with the folded weights. Between requests other work evicts the CPU
        # caches, so each numpy call costs microseconds.
        dense = np.zeros(self._dense_w.shape[0], dtype=np.float32)
        dense[-1] = 1.0  # the bias's row
        dim, n_lexical = self.encoder.dim, head.spec.n_lexical
        embedded = self.encoder.embed_one(text, out=dense[:dim])
        # Without its greeting and "could you please": the lexical features and the hashed opening both need it.
        body = strip_politeness(text)
        dense[dim : dim + n_lexical] = lexical_features(text, body)
        if head.prototypes is not None:
            spec, block = head.spec, dense[dim + n_lexical : -1]
            prototype_features(embedded, head.prototypes, runs=spec.prototype_runs, top=spec.prototype_top, out=block)
        z: npt.NDArray[np.float64] = dense @ self._dense_w
        buckets = self.featurizer.hashed(text, body)
        if buckets.size:
            # take(): a third of the cost of fancy indexing for a few rows. Summed in float64, so the Python float
            # scale keeps it float64.
            z += head.sparse_w.take(buckets, axis=0).sum(axis=0, dtype=np.float64) * (
                self._sparse_scale / math.sqrt(buckets.size)
            )
        return z

    def context_logits(self, request: ClassifyInput) -> npt.NDArray[np.float64]:
        """The last turn's logits plus, for a follow-up, the prior turns' evidence (logits minus bias)."""
        z = self.logits(request.last_user)
        if not request.prior_user:
            return z
        # A follow-up that is sure of itself on its own takes half the context; an unsure one, all of it.
        doubt = (1.0 - max(self.head.calibrated_one(z))) / (1.0 - 1.0 / len(self.head.categories))
        weight = self.context_weight * follow_up_score(request.last_user) * min(1.0, max(0.5, 3.0 * doubt))
        for turn in reversed(request.prior_user):
            if weight < 1e-3:
                break
            z = z + weight * (self.logits(turn[:_PRIOR_CHARS]) - self.head.bias)
            weight *= self.context_decay
        return z

    def predict(self, request: ClassifyInput) -> Decision:
        started = time.perf_counter()
        if self.memory is not None and len(self.memory):
            recalled = self.memory.recall(self.encoder.embed_one(request.last_user))
            if recalled is not None:
                category, similarity = recalled
                rest = (1.0 - similarity) / max(1, len(self.head.categories) - 1)
                scores = {c: similarity if c == category else rest for c in self.head.categories}
                ms = (time.perf_counter() - started) * 1000
                return Decision(category, similarity, scores, "memory", ms, (LayerTiming(self.name, ms),))
        probabilities = self.head.calibrated_one(self.context_logits(request))
        confidence = max(probabilities)  # the first of equal maxima, as np.argmax picks
        category = self.head.categories[probabilities.index(confidence)]
        ms = (time.perf_counter() - started) * 1000
        scores = dict(zip(self.head.categories, probabilities, strict=True))
        return Decision(category, confidence, scores, self.name, ms, (LayerTiming(self.name, ms),))

    async def classify(self, request: ClassifyInput) -> Decision:
        size = min(len(request.last_user), _CLIPPED) + sum(min(len(t), _PRIOR_CHARS) for t in request.prior_user)
        if size > _INLINE_CHARS:
            return await asyncio.to_thread(self.predict, request)
        return self.predict(request)

    def predict_labels(self, texts: Sequence[str]) -> list[str]:
        """The category of each text, alone (no context): the batch path for evaluation and retraining."""
        if not texts:
            return []
        z = self.head.logits(self.featurizer.batch(texts))
        return [self.head.categories[i] for i in z.argmax(axis=1)]
