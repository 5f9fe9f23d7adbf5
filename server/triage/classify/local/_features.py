"""The local classifier's features: a static-embedding encoder, hashed word n-grams and lexical signals.

    text ─▶ normalise (lower-case, bounded length)
         ├─▶ Encoder: WordLlama token vectors, mean-pooled, L2-normalised        dense, 256 floats
         │     └─▶ similarity to each category's prototypes (`_prototypes`)      dense, 2 per category
         ├─▶ lexical signals (`_lexical`)                                        dense, ~45 floats
         └─▶ hashed word unigrams + bigrams + the request's first word(s)        sparse, 2^18 buckets

The encoder was chosen by measurement (see bench/classifier.py): WordLlama (MIT, weights inside its wheel) embeds a
request in ~20 µs, against ~3 ms for MiniLM-L6 on onnxruntime, and with the sparse and lexical blocks beside it the
head scores as well. Static embeddings know what words mean; the hashed n-grams keep the exact phrasing ("my
balance", "how many") that a mean of vectors blurs; the lexical block carries what neither sees (see `_lexical`).

Hashing (crc32, seeded per namespace) needs no vocabulary, so a head ships as weights only: no text of what it was
trained on. Case is dropped everywhere but in the code-shape signal: some sources are lower-case throughout, and a
model must not learn casing.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from triage._exceptions import ConfigError
from triage.classify.local._lexical import LEXICAL_NAMES, lexical_matrix, strip_politeness

__all__ = [
    "CLIPPED_CHARS",
    "ENCODER_NAME",
    "FEATURE_VERSION",
    "N_BUCKETS",
    "Batch",
    "Encoder",
    "FeatureSpec",
    "Featurizer",
    "clip_text",
]

ENCODER_NAME = "wordllama/l2_supercat_256"
# Bump when the features a text maps to change (hashing, clipping, the lexical list): older heads then refuse to load.
FEATURE_VERSION = 3
N_BUCKETS = 1 << 18
# Longer texts keep their head and tail: the request is usually at one end of a pasted document. This bounds the
# work per text (~1.5 ms at the cap, against ~0.2 ms for a typical request).
_HEAD_CHARS = 1000
_TAIL_CHARS = 400
CLIPPED_CHARS = _HEAD_CHARS + _TAIL_CHARS + 1

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[?$%=+*/^<>#@{}()\[\]]")
# The same words, found in the text's UTF-8 (ASCII, so the same matches): crc32 takes them as they come.
_WORD_BYTES = re.compile(_WORD.pattern.encode())
_BIGRAM_MULTIPLIER = 0x9E3779B1  # odd 32-bit constants: a bigram's key differs from both words' and the reverse's
_BIGRAM_SALT = 0x85EBCA77
_DIGIT = re.compile(r"\d")
# The first words are looked for in the text's opening only.
_OPENING_CHARS = 200
# All WordLlama's tokenizer does before its BPE model: prepend "▁" and turn spaces into "▁" (SentencePiece's way).
_LLAMA_NORMALIZER = {
    "type": "Sequence",
    "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
    ],
}
# The normalised text's pieces: a run of "▁" and what follows it up to the next "▁" (or a trailing run of them).
# No token of WordLlama's vocabulary holds a "▁" after another character (a test checks), so no BPE merge joins a
# piece to the one before it: BPE on each piece gives the ids of BPE on the whole text.
_PIECE = re.compile("▁*[^▁]+|▁+")
# Pieces whose ids are kept. The BPE model caches whole texts, which seldom repeat; a few thousand words make up most
# requests. Measured in the peers bench (caches cold between decisions): a text of known words costs a third of its
# BPE. Only word-sized pieces are kept, so clients sending long unique strings cannot make the cache large: at most
# 32,768 pieces of up to 32 characters, ~16 MB.
_PIECE_CACHE = 1 << 15
_CACHED_PIECE_CHARS = 32


def clip_text(text: str) -> str:
    if len(text) <= _HEAD_CHARS + _TAIL_CHARS:
        return text
    return text[:_HEAD_CHARS] + "\n" + text[-_TAIL_CHARS:]


class Encoder:
    """WordLlama's token embeddings, mean-pooled. Loaded from the files inside the `wordllama` wheel with
    `tokenizers` and `safetensors` directly: never downloads, and does not import `wordllama` (whose import
    configures the root logger)."""

    def __init__(self, embedding: npt.NDArray[np.floating[Any]], tokenizer: Any) -> None:
        # Widened once here (16 MB more): numpy converts float16 in software, which was half the pooling's time
        # (~7 µs a request, ~25 µs for a long one). The sums are the same float32 sums either way.
        self._embedding = embedding.astype(np.float32)
        self._tokenizer = tokenizer
        self.dim = int(embedding.shape[1])
        # `encode` wraps the BPE model's work in a whole Encoding (offsets, masks, word ids), about as costly again as
        # the BPE itself. When the tokenizer only normalises the Llama way, its model runs on the normalised text
        # directly: the same ids (a test compares them). A special token spelt out in the text still goes through
        # `encode`, which matches those before normalising.
        pipeline = json.loads(tokenizer.to_str())
        direct = pipeline.get("normalizer") == _LLAMA_NORMALIZER and pipeline.get("pre_tokenizer") is None
        self._bpe = tokenizer.model if direct else None
        bpe = tokenizer.model

        def piece_ids(piece: str) -> tuple[int, ...]:  # `bpe` held here, not through self: no cycle via the cache
            return tuple(token.id for token in bpe.tokenize(piece))

        self._piece_ids = piece_ids
        self._cached_piece_ids = functools.lru_cache(maxsize=_PIECE_CACHE)(piece_ids)
        self._specials = tuple(token.content for token in tokenizer.get_added_tokens_decoder().values())

    @classmethod
    def load(cls) -> Encoder:
        spec = importlib.util.find_spec("wordllama")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "classifier.kind: the local classifier needs the `wordllama` package (pip install wordllama)"
            )
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = Path(next(iter(spec.submodule_search_locations)))
        weights = root / "weights" / "l2_supercat_256.safetensors"
        tokenizer_file = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
        if not weights.exists() or not tokenizer_file.exists():
            raise ConfigError(f"classifier.kind: wordllama's bundled weights are missing under {str(root)!r}")
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return cls(load_file(str(weights))["embedding.weight"], tokenizer)

    def token_ids(self, text: str) -> list[int]:
        if self._bpe is None or any(special in text for special in self._specials):
            ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
            return ids
        if not text:
            return []
        cached, uncached = self._cached_piece_ids, self._piece_ids
        return [
            i
            for piece in _PIECE.findall("▁" + text.replace(" ", "▁"))
            for i in (cached(piece) if len(piece) <= _CACHED_PIECE_CHARS else uncached(piece))
        ]

    def embed_one(self, text: str, out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
        """The L2-normalised mean of the (lower-cased) text's token vectors; zeros for an empty text. `out`: a
        zeroed float32 vector to write it into (the local classifier's feature vector, filled in place)."""
        vector = np.zeros(self.dim, dtype=np.float32) if out is None else out
        ids = self.token_ids(clip_text(text).lower())
        if not ids:
            return vector
        # The mean's direction is the sum's: normalising the sum skips a division. take() costs two thirds of fancy
        # indexing for a few rows.
        self._embedding.take(ids, axis=0).sum(axis=0, out=vector)
        # math.sqrt on the float32 sum of squares, rounded back to float32, is np.sqrt's float32 result exactly
        # (a double's 53 bits are more than twice float32's 24 plus 2), without numpy's per-scalar overhead.
        norm = np.float32(math.sqrt(float(vector @ vector)))
        if norm > 0:
            vector /= norm
        return vector

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of many texts, one row each (what semantic-router style baselines compare)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed_one(text)
        return out


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """How features are built and scaled; stored with a head so the featurizer at load time matches training.
    The block weights set each block's share of the (uniform) L2 penalty."""

    dense_weight: float = 0.5
    lexical_weight: float = 0.5
    sparse_weight: float = 1.0
    prototype_weight: float = 1.0
    prototypes: int = 20  # per category and clustering run; 0: no prototype block (see `_prototypes`)
    prototype_runs: int = 3
    prototype_top: int = 3
    n_buckets: int = N_BUCKETS
    encoder: str = ENCODER_NAME
    version: int = FEATURE_VERSION
    n_lexical: int = len(LEXICAL_NAMES)

    def check(self) -> None:
        """Raise ConfigError if this code cannot build the features a head was trained on."""
        current = FeatureSpec()
        if (self.encoder, self.version, self.n_lexical) != (
            current.encoder,
            current.version,
            current.n_lexical,
        ):
            raise ConfigError(
                f"classifier.head: trained on features {self.encoder} v{self.version}, this version of Triage builds "
                f"{current.encoder} v{current.version}: retrain the head (triage train)"
            )


@dataclass(frozen=True, slots=True)
class Batch:
    """Features of many texts: a dense matrix, and the hashed block in CSR form (indptr, indices, values)."""

    dense: npt.NDArray[np.float32]
    indptr: npt.NDArray[np.int64]
    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.dense.shape[0])

    def take(self, rows: npt.NDArray[np.int64]) -> Batch:
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        pieces = [np.arange(s, e) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        return Batch(self.dense[rows], indptr, self.indices[flat], self.values[flat])


class Featurizer:
    def __init__(self, encoder: Encoder, spec: FeatureSpec) -> None:
        spec.check()
        self.encoder = encoder
        self.spec = spec

    @property
    def dense_dim(self) -> int:
        return self.encoder.dim + self.spec.n_lexical

    def hashed(self, text: str, body: str | None = None) -> npt.NDArray[np.int64]:
        """Bucket indices (unique, ascending) of the text's word unigrams, bigrams and first words. `body`:
        `strip_politeness(text)` if the caller has it (the local classifier shares it with the lexical features)."""
        words = _WORD_BYTES.findall(_DIGIT.sub("0", text.lower()).encode())
        # One crc32 per word; bigrams combine their words' hashes arithmetically (no string per pair). In plain ints:
        # a request has tens of words, too few for numpy's per-call overhead to pay. Both hashes are below 2**32, so
        # `a * multiplier + b` stays below 2**64: the same keys as the uint64 arithmetic heads were trained on.
        n_buckets = self.spec.n_buckets
        unigrams = [zlib.crc32(w) for w in words]
        buckets = {key % n_buckets for key in unigrams}
        buckets.update([((a * _BIGRAM_MULTIPLIER + b) ^ _BIGRAM_SALT) % n_buckets for a, b in pairwise(unigrams)])
        # The verb or question word that opens the request, past any "could you please".
        if body is None or len(text) > _OPENING_CHARS:
            body = strip_politeness(text[:_OPENING_CHARS])
        opening = _WORD.finditer(_DIGIT.sub("0", body))
        first = [match.group() for match in islice(opening, 2)]
        if first:
            opening_keys = (zlib.crc32(first[0].encode(), 3), zlib.crc32(" ".join(first).encode(), 4))
            buckets.update(key % n_buckets for key in opening_keys)
        return np.array(sorted(buckets), dtype=np.int64)

    def dense(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        embedded = self.encoder.embed(texts) * np.float32(self.spec.dense_weight)
        lexical = lexical_matrix(texts) * np.float32(self.spec.lexical_weight)
        return np.hstack([embedded, lexical]).astype(np.float32, copy=False)

    def batch(self, texts: Sequence[str]) -> Batch:
        clipped = [clip_text(t) for t in texts]
        rows = [self.hashed(t) for t in clipped]
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        # Each row's hashed block has unit L2 norm (times the block weight), whatever the text's length.
        scale = np.float32(self.spec.sparse_weight) / np.sqrt(np.maximum(counts, 1)).astype(np.float32)
        values = np.repeat(scale, counts).astype(np.float32)
        return Batch(self.dense(clipped), indptr, indices.astype(np.int64), values)
