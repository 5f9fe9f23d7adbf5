"""The local classifier against two baselines on ../shared/data/dev.jsonl, side by side in one run.

Arms (all trained on the same texts in each setting):
- triage: Triage's default recipe (`train_head`: encoder + lexical + hashed n-grams + prototypes, linear head);
- nearest-utterance: semantic-router's way, on the same encoder: a route's score is the mean of the top-5 cosine
  similarities between the request and the route's utterances (every training text is an utterance);
- tfidf-lr: TF-IDF word 1-2-grams + char 2-5-grams, scikit-learn's LogisticRegression (C=10);
- encoder-lr: the plain encoder embedding + LogisticRegression (for scale: "encoder + linear head" alone).

Settings (macro-F1 over simple / reasoning / tool_use):
- test: trained on the train split + the shipped exemplars, scored on the test split;
- exemplars-only: trained on the project's own exemplars alone, scored on all of dev.jsonl (sources never seen);
- leave-one-source-out: for each source, trained on the other sources + exemplars, scored on it; pooled.
Latency: one decision at a time, in-process, p50/p99 over the test split. Plus Triage's start-up (a fresh process
loading the shipped head and deciding once) and its peak RSS.

Prints a table, then as its last line one JSON object of figures (with ratios against the baselines).
The bench may read ../shared (the product never does). Run: .venv/bin/python bench/classifier.py  (about 1-2 min)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _load import ROOT, json_line, percentile

from triage.classify._evaluation import macro_f1

DATA = Path(os.environ.get("TRIAGE_DEV_DATA", ROOT.parent / "shared" / "data" / "dev.jsonl"))
CATEGORIES = ("simple", "reasoning", "tool_use")
Predictor = Callable[[str], str]
# (texts, labels, weights) -> predictor; the weights are the recipe's (exemplars count less than data lines).
Trainer = Callable[[Sequence[str], Sequence[str], Sequence[float]], Predictor]


def triage_arm(encoder: Any) -> Trainer:
    from triage.classify import LocalClassifier, train_head
    from triage.classify.local import FeatureSpec, Featurizer

    featurizer = Featurizer(encoder, FeatureSpec())

    def train(texts: Sequence[str], labels: Sequence[str], weights: Sequence[float]) -> Predictor:
        from triage.classify import ClassifyInput

        # Calibration folds change confidences, not categories: skipped here to keep the bench short.
        head = train_head(texts, labels, sample_weight=weights, categories=CATEGORIES, featurizer=featurizer, folds=0)
        classifier = LocalClassifier(head, encoder)
        return lambda text: classifier.predict(ClassifyInput(text)).category

    return train


def nearest_utterance_arm(encoder: Any, top: int = 5) -> Trainer:
    def train(texts: Sequence[str], labels: Sequence[str], weights: Sequence[float]) -> Predictor:
        vectors = encoder.embed(list(texts))
        routes = [(c, vectors[[label == c for label in labels]]) for c in CATEGORIES]

        def predict(text: str) -> str:
            query = encoder.embed_one(text)
            scores = [float(np.sort(m @ query)[-top:].mean()) for _, m in routes]
            return routes[int(np.argmax(scores))][0]

        return predict

    return train


def tfidf_arm() -> Trainer:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    def train(texts: Sequence[str], labels: Sequence[str], weights: Sequence[float]) -> Predictor:
        features = make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        )
        model = make_pipeline(features, LogisticRegression(C=10, max_iter=3000))
        model.fit(list(texts), list(labels), logisticregression__sample_weight=list(weights))
        return lambda text: str(model.predict([text])[0])

    return train


def encoder_lr_arm(encoder: Any) -> Trainer:
    from sklearn.linear_model import LogisticRegression

    def train(texts: Sequence[str], labels: Sequence[str], weights: Sequence[float]) -> Predictor:
        model = LogisticRegression(C=10, max_iter=3000)
        model.fit(encoder.embed(list(texts)), list(labels), sample_weight=list(weights))
        return lambda text: str(model.predict(encoder.embed_one(text)[None, :])[0])

    return train


def retrain_seconds(encoder: Any, rows: Sequence[dict[str, Any]], exemplars: Sequence[tuple[str, str]]) -> float:
    """A retrain as the learning loop runs one: the exemplars + 300 reviewed corrections (weight 3), 5-fold
    calibration, on an encoder already loaded."""
    from triage.classify import train_head
    from triage.classify.local import FeatureSpec, Featurizer

    corrections = list(rows[::12])[:300]
    texts = [t for t, _ in exemplars] + [r["text"] for r in corrections]
    labels = [c for _, c in exemplars] + [r["label"] for r in corrections]
    weights = [1.0] * len(exemplars) + [3.0] * len(corrections)
    started = time.perf_counter()
    train_head(
        texts, labels, sample_weight=weights, categories=CATEGORIES, featurizer=Featurizer(encoder, FeatureSpec())
    )
    return time.perf_counter() - started


FOLLOW_UPS = {
    "reasoning": [
        "and in Python?",
        "what about for negative numbers?",
        "now do it in JavaScript",
        "can you make it faster?",
    ],
    "tool_use": ["and tomorrow?", "what about in Boston?", "make it louder", "also for Saturday"],
    "simple": ["and Macbeth?", "what about France?", "why is that?", "tell me more"],
}


def context_figures(test: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Synthetic two-turn conversations on the shipped head: a test item after an unrelated turn (should keep its
    route), and a vague follow-up after a test item (should take that item's route)."""
    import random

    from triage.classify import ClassifyInput, LocalClassifier

    classifier = LocalClassifier.load()
    rng = random.Random(0)
    kept = alone = 0
    for row in test:
        other = rng.choice([r for r in test if r["label"] != row["label"]])
        kept += classifier.predict(ClassifyInput(row["text"], (other["text"],))).category == row["label"]
    followed = total = 0
    for label, phrases in FOLLOW_UPS.items():
        for prior in [r["text"] for r in test if r["label"] == label][:50]:
            for phrase in phrases:
                total += 1
                followed += classifier.predict(ClassifyInput(phrase, (prior,))).category == label
                alone += classifier.predict(ClassifyInput(phrase)).category == label
    return {
        "clear_after_unrelated": kept / len(test),
        "follow_up_with_context": followed / total,
        "follow_up_alone": alone / total,
    }


def startup() -> dict[str, float]:
    """A fresh interpreter: import, load the shipped head, one decision; wall time and peak RSS."""
    # Peak RSS from /proc (VmHWM): getrusage's ru_maxrss survives exec, so a child would report its parent's peak.
    peak = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"
    code = (
        "import time; t = time.perf_counter()\n"
        "from triage.classify import ClassifyInput, LocalClassifier\n"
        "c = LocalClassifier.load(); c.predict(ClassifyInput('hello'))\n"
        f"print(time.perf_counter() - t, {peak})"
    )
    base = f"import numpy; print(0, {peak})"
    seconds, rss = (float(x) for x in subprocess.check_output([sys.executable, "-c", code], text=True).split())
    _, bare = (float(x) for x in subprocess.check_output([sys.executable, "-c", base], text=True).split())
    return {"startup_s": seconds, "rss_mb": rss, "classifier_rss_mb": rss - bare}  # over python + numpy


def main() -> None:
    from triage.classify import DEFAULT_EXEMPLAR_WEIGHT, load_exemplars
    from triage.classify.local import Encoder

    started = time.perf_counter()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        row["group"] = row["source"].split(":")[0]  # the BFCL subsets are one source
    exemplars = load_exemplars()
    ex_texts, ex_labels = [t for t, _ in exemplars], [c for _, c in exemplars]
    ex_weights = [DEFAULT_EXEMPLAR_WEIGHT] * len(exemplars)
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    encoder = Encoder.load()
    arms: dict[str, Trainer] = {
        "triage": triage_arm(encoder),
        "nearest-utterance": nearest_utterance_arm(encoder),
        "tfidf-lr": tfidf_arm(),
        "encoder-lr": encoder_lr_arm(encoder),
    }
    sources = sorted({r["group"] for r in rows})
    results: dict[str, dict[str, Any]] = {}
    for name, fit in arms.items():
        arm_started = time.perf_counter()
        predict = fit(
            [r["text"] for r in train] + ex_texts,
            [r["label"] for r in train] + ex_labels,
            [1.0] * len(train) + ex_weights,
        )
        predict("warm-up")
        latencies, predicted = [], []
        for r in test:
            t = time.perf_counter()
            predicted.append(predict(r["text"]))
            latencies.append((time.perf_counter() - t) * 1000)
        figures: dict[str, Any] = {
            "test_macro_f1": macro_f1([r["label"] for r in test], predicted, CATEGORIES),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
        }
        predict = fit(ex_texts, ex_labels, [1.0] * len(ex_texts))
        figures["exemplars_only_macro_f1"] = macro_f1(
            [r["label"] for r in rows], [predict(r["text"]) for r in rows], CATEGORIES
        )
        pooled_truth, pooled_predicted, per_source = [], [], {}
        for source in sources:
            kept = [r for r in rows if r["group"] != source]
            held = [r for r in rows if r["group"] == source]
            predict = fit(
                [r["text"] for r in kept] + ex_texts,
                [r["label"] for r in kept] + ex_labels,
                [1.0] * len(kept) + ex_weights,
            )
            guesses = [predict(r["text"]) for r in held]
            per_source[source] = sum(g == r["label"] for g, r in zip(guesses, held, strict=True)) / len(held)
            pooled_truth += [r["label"] for r in held]
            pooled_predicted += guesses
        figures["loso_macro_f1"] = macro_f1(pooled_truth, pooled_predicted, CATEGORIES)
        figures["loso_accuracy_by_source"] = per_source
        figures["seconds"] = time.perf_counter() - arm_started
        results[name] = figures
        print(f"  {name}: done in {figures['seconds']:.0f} s", file=sys.stderr, flush=True)

    head = f"{'arm':<18} {'test F1':>8} {'exemplars->dev F1':>18} {'LOSO F1':>8} {'p50 ms':>8} {'p99 ms':>8}"
    print(head + "\n" + "-" * len(head))
    for name, f in results.items():
        print(
            f"{name:<18} {f['test_macro_f1']:8.4f} {f['exemplars_only_macro_f1']:18.4f} {f['loso_macro_f1']:8.4f} "
            f"{f['p50_ms']:8.3f} {f['p99_ms']:8.3f}"
        )
    print("\nleave-one-source-out accuracy by source")
    print(f"{'source':<12}" + "".join(f"{name:>19}" for name in results))
    for source in sources:
        print(f"{source:<12}" + "".join(f"{results[n]['loso_accuracy_by_source'][source]:19.3f}" for n in results))
    boot = startup()
    boot["retrain_s"] = retrain_seconds(encoder, rows, exemplars)
    context = context_figures(test)
    print(
        f"\ntriage start-up (fresh process, shipped head, one decision): {boot['startup_s']:.2f} s, peak RSS "
        f"{boot['rss_mb']:.0f} MB ({boot['classifier_rss_mb']:.0f} MB over an interpreter with numpy)"
    )

    summary: dict[str, Any] = {name: {k: v for k, v in f.items() if k != "seconds"} for name, f in results.items()}
    t = results["triage"]
    for base in ("nearest-utterance", "tfidf-lr", "encoder-lr"):
        b = results[base]
        summary[f"triage_vs_{base}"] = {
            key: t[key] / b[key] if b[key] else None
            for key in ("test_macro_f1", "exemplars_only_macro_f1", "loso_macro_f1", "p50_ms", "p99_ms")
        }
    summary["startup"] = boot
    summary["context"] = context
    summary["seconds"] = time.perf_counter() - started
    print(json_line(summary))


if __name__ == "__main__":
    main()
