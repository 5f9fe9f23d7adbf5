"""Routing figures of a labeled set: how a classifier's decisions route under the confidence bars, what that costs,
and the bar that bounds under-routing with the least fallback (used by `triage eval` and `triage calibrate`).

Routing follows the policy: a decision below its category's bar goes to the strongest model (fallback), any other
to its category's first model. *Under-routing* is the share of items not labeled with the cheapest route that were
sent to it: the costly mistake (a hard request answered by the weak model); *confident* under-routing counts those
sent with confidence >= 0.9, which no sensible bar rescues. A fallback costs money, not quality. Cost compares the
set's mix, routed, with sending everything to the strongest model, at a fixed token count per request. Items that
carry a `source` are also measured per source: a router that only scores well on the sources it trained on has
memorised them.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from triage._config import TriageConfig
from triage.classify._decision import ClassifyInput, Decision

__all__ = [
    "CONFIDENT",
    "Routed",
    "bars_of",
    "cheapest_category",
    "choose_threshold",
    "decide_all",
    "macro_f1",
    "route_metrics",
]

# The confidence from which an under-route counts as confident: past any bar worth setting.
CONFIDENT = 0.9


@dataclass(frozen=True, slots=True)
class Routed:
    label: str
    category: str
    confidence: float
    ms: float
    source: str = ""


def cheapest_category(config: TriageConfig) -> str:
    """The route whose first model costs least (ties: the default category, then config order)."""

    def price(category: str) -> tuple[float, int, int]:
        model = config.models[config.routes[category].models[0]]
        order = list(config.routes).index(category)
        return (model.input_per_mtok + model.output_per_mtok, category != config.default_category, order)

    return min(config.routes, key=price)


def bars_of(
    config: TriageConfig, *, threshold: float | None = None, cheap_bar: float | None = None
) -> dict[str, float]:
    """The confidence bar of each category: the config's (`threshold` overrides the global one), with the cheapest
    route's set to `cheap_bar` if given."""
    cfg = config.classifier
    bars = {c: cfg.thresholds.get(c, cfg.threshold if threshold is None else threshold) for c in config.categories}
    if cheap_bar is not None:
        bars[cheapest_category(config)] = cheap_bar
    return bars


def _request_cost(config: TriageConfig, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    m = config.models[model]
    return (m.input_per_mtok * prompt_tokens + m.output_per_mtok * completion_tokens) / 1e6


def route_metrics(
    routed: Sequence[Routed],
    config: TriageConfig,
    bars: Mapping[str, float] | None = None,
    *,
    prompt_tokens: int = 500,
    completion_tokens: int = 300,
    per_source: bool = True,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label precision/recall, confusion, under-routing (and confident under-routing),
    fallback, cost ratio, latency; with `per_source`, the same figures for each source the items name."""
    bars = dict(bars if bars is not None else bars_of(config))
    categories = list(dict.fromkeys([*config.categories, *(r.label for r in routed)]))
    n = len(routed)
    confusion = {t: {p: 0 for p in categories} for t in categories}
    for r in routed:
        confusion[r.label][r.category] += 1
    per_label: dict[str, dict[str, float]] = {}
    for c in categories:
        tp = confusion[c][c]
        predicted = sum(confusion[t][c] for t in categories)
        actual = sum(confusion[c].values())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[c] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    present = [c for c in categories if per_label[c]["support"]]
    cheap = cheapest_category(config)
    strongest = config.strongest_model

    def fallback(r: Routed) -> bool:
        return r.confidence < bars.get(r.category, config.classifier.threshold)

    harder = [r for r in routed if r.label != cheap]
    under = [r for r in harder if r.category == cheap and not fallback(r)]
    cost = sum(
        _request_cost(
            config, strongest if fallback(r) else config.routes[r.category].models[0], prompt_tokens, completion_tokens
        )
        for r in routed
        if r.category in config.routes
    )
    baseline = n * _request_cost(config, strongest, prompt_tokens, completion_tokens)
    latencies = sorted(r.ms for r in routed)
    figures: dict[str, Any] = {
        "n": n,
        "threshold": bars.get(cheap, config.classifier.threshold),
        "bars": bars,
        "accuracy": sum(r.label == r.category for r in routed) / n if n else 0.0,
        "macro_f1": statistics.fmean(per_label[c]["f1"] for c in present) if present else 0.0,
        "under_routing": len(under) / len(harder) if harder else 0.0,
        "confident_under_routing": sum(r.confidence >= CONFIDENT for r in under) / len(harder) if harder else 0.0,
        "fallback_share": sum(fallback(r) for r in routed) / n if n else 0.0,
        "cost_ratio": cost / baseline if baseline else 0.0,
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "cheapest_route": cheap,
        "per_label": per_label,
        "confusion": confusion,
    }
    if per_source:
        by_source: dict[str, list[Routed]] = {}
        for r in routed:
            if r.source:
                by_source.setdefault(r.source, []).append(r)
        figures["per_source"] = {
            source: route_metrics(items, config, bars, prompt_tokens=prompt_tokens,
                                  completion_tokens=completion_tokens, per_source=False)
            for source, items in sorted(by_source.items())
        }
    return figures


def _percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def choose_threshold(routed: Sequence[Routed], cheap: str, max_under_routing: float) -> tuple[float, float, float]:
    """(bar, under-routing, fallback share of the cheap route's decisions): the lowest bar for decisions of the
    cheapest route that keeps under-routing within the bound.

    Only those decisions can under-route, and raising their bar only moves them to the strongest model, so
    under-routing falls and fallback grows with it: the lowest bar that meets the bound has the least fallback."""
    harder = max(1, sum(r.label != cheap for r in routed))
    n = max(1, len(routed))
    # Candidates: 0, and just above each confidence of an under-routed item (sending it to fallback), on a 1e-4 grid
    # so that the value written to a config is exactly the one measured.
    candidates = sorted(
        {
            0.0,
            *(
                min(1.0, math.floor(r.confidence * 1e4) / 1e4 + 1e-4)
                for r in routed
                if r.label != cheap and r.category == cheap
            ),
        }
    )
    for t in candidates:
        under = sum(r.label != cheap and r.category == cheap and r.confidence >= t for r in routed) / harder
        if under <= max_under_routing:
            return t, under, sum(r.category == cheap and r.confidence < t for r in routed) / n
    return 1.0, 0.0, sum(r.category == cheap and r.confidence < 1.0 for r in routed) / n


def decide_all(classifier: Any, rows: Sequence[dict[str, Any]]) -> list[Routed]:
    """Every row's decision, timed one by one as the gateway would ask (one request at a time)."""
    sync = getattr(classifier, "predict", None)

    def decide(request: ClassifyInput) -> Decision:
        decision: Decision = sync(request) if sync is not None else asyncio.run(classifier.classify(request))
        return decision

    decide(ClassifyInput("warm-up"))
    routed = []
    for row in rows:
        request = ClassifyInput(str(row["text"]), tuple(str(t) for t in row.get("prior_user", ())))
        started = time.perf_counter()
        decision = decide(request)
        ms = (time.perf_counter() - started) * 1000
        routed.append(Routed(str(row["label"]), decision.category, decision.confidence, ms, str(row.get("source", ""))))
    return routed


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
