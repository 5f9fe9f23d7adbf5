"""`triage eval` and `triage calibrate`: how a classifier routes a labeled JSONL file, and the threshold to use.

    triage eval --data labeled.jsonl [--split test] [--head PATH] [--config triage.yaml] [--json]
    triage calibrate --data labeled.jsonl --max-under-routing 0.03 [--out triage.yaml]

Routing follows the policy: a decision below the threshold goes to the strongest model (fallback), any other to its
category's first model. *Under-routing* is the share of items not labeled with the cheapest route that were sent to
it with confidence: the costly mistake (a hard request answered by the weak model). A fallback costs money, not
quality. Cost compares the file's mix, routed, with sending everything to the strongest model, at a fixed token
count per request. `calibrate` picks the lowest threshold whose under-routing stays within the bound (the least
fallback), prints it, and with `--out` writes it to the config's `classifier.threshold`.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._classifier import ClassifyInput, Decision, RulesClassifier
from ._config import TriageConfig, load_config
from ._exceptions import ConfigError
from ._train import read_jsonl

__all__ = [
    "Routed",
    "cheapest_category",
    "choose_threshold",
    "configure_calibrate",
    "configure_eval",
    "decide_all",
    "route_metrics",
    "run_calibrate",
    "run_eval",
    "set_threshold",
]


@dataclass(frozen=True, slots=True)
class Routed:
    label: str
    category: str
    confidence: float
    ms: float


def cheapest_category(config: TriageConfig) -> str:
    """The route whose first model costs least (ties: the default category, then config order)."""

    def price(category: str) -> tuple[float, int, int]:
        model = config.models[config.routes[category].models[0]]
        order = list(config.routes).index(category)
        return (model.input_per_mtok + model.output_per_mtok, category != config.default_category, order)

    return min(config.routes, key=price)


def _request_cost(config: TriageConfig, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    m = config.models[model]
    return (m.input_per_mtok * prompt_tokens + m.output_per_mtok * completion_tokens) / 1e6


def route_metrics(
    routed: Sequence[Routed],
    config: TriageConfig,
    threshold: float,
    *,
    prompt_tokens: int = 500,
    completion_tokens: int = 300,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label precision/recall, confusion, under-routing, fallback, cost ratio, latency."""
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
    harder = [r for r in routed if r.label != cheap]
    under = sum(r.category == cheap and r.confidence >= threshold for r in harder)
    fallback = sum(r.confidence < threshold for r in routed)
    cost = sum(
        _request_cost(
            config,
            strongest if r.confidence < threshold else config.routes[r.category].models[0],
            prompt_tokens,
            completion_tokens,
        )
        for r in routed
        if r.category in config.routes
    )
    baseline = n * _request_cost(config, strongest, prompt_tokens, completion_tokens)
    latencies = sorted(r.ms for r in routed)
    return {
        "n": n,
        "threshold": threshold,
        "accuracy": sum(r.label == r.category for r in routed) / n if n else 0.0,
        "macro_f1": statistics.fmean(per_label[c]["f1"] for c in present) if present else 0.0,
        "under_routing": under / len(harder) if harder else 0.0,
        "fallback_share": fallback / n if n else 0.0,
        "cost_ratio": cost / baseline if baseline else 0.0,
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "cheapest_route": cheap,
        "per_label": per_label,
        "confusion": confusion,
    }


def _percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def choose_threshold(routed: Sequence[Routed], cheap: str, max_under_routing: float) -> tuple[float, float, float]:
    """(threshold, under-routing, fallback share): the lowest threshold whose under-routing is within the bound.

    Raising the threshold only moves decisions to the strongest model, so under-routing falls and fallback grows
    with it: the lowest threshold that meets the bound has the least fallback."""
    harder = max(1, sum(r.label != cheap for r in routed))
    n = max(1, len(routed))
    # Candidate thresholds: 0, and just above each confidence of an under-routed item (sending it to fallback), on a
    # 1e-4 grid so that the value written to a config is exactly the one measured.
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
            return t, under, sum(r.confidence < t for r in routed) / n
    return 1.0, 0.0, sum(r.confidence < 1.0 for r in routed) / n


def set_threshold(path: Path, threshold: float) -> None:
    """Write `classifier.threshold` into a YAML config, keeping its comments and layout where it can."""
    text = path.read_text(encoding="utf-8")
    value = f"{threshold:.4f}".rstrip("0").rstrip(".")
    block = re.search(
        r"(?m)^classifier:[ \t]*\n((?:[ \t]+.*\n|[ \t]*\n)*)", text + ("\n" if not text.endswith("\n") else "")
    )
    if block and re.search(r"(?m)^([ \t]+)threshold:.*$", block.group(1)):
        body = re.sub(
            r"(?m)^([ \t]+)threshold:.*$", lambda m: f"{m.group(1)}threshold: {value}", block.group(1), count=1
        )
        text = text[: block.start(1)] + body + text[block.end(1) :]
    elif block:
        indent = re.match(r"[ \t]+", block.group(1))
        pad = indent.group(0) if indent else "  "
        text = text[: block.start(1)] + f"{pad}threshold: {value}\n" + text[block.start(1) :]
    else:
        import yaml

        raw = yaml.safe_load(text) or {}
        if "classifier" in raw:  # a flow-style mapping: rewrite the file (comments are lost)
            raw["classifier"] = {**raw["classifier"], "threshold": float(value)}
            text = yaml.safe_dump(raw, sort_keys=False)
        else:
            text = text.rstrip("\n") + f"\nclassifier:\n  threshold: {value}\n"
    path.write_text(text, encoding="utf-8")
    load_config(path)  # the result must still be a valid config


def _classifier(args: argparse.Namespace, config: TriageConfig) -> Any:
    if args.classifier == "rules":
        return RulesClassifier(config.categories, default=config.default_category)
    from ._local import LocalClassifier

    return LocalClassifier.load(args.head or config.classifier.head, categories=config.categories)


def decide_all(classifier: Any, rows: Sequence[dict[str, Any]]) -> list[Routed]:
    """Every row's decision, timed one by one as the gateway would ask (one request at a time)."""
    import asyncio

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
        routed.append(Routed(str(row["label"]), decision.category, decision.confidence, ms))
    return routed


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help='labeled JSONL file: one {"text", "label"} object a line')
    parser.add_argument("--split", help="use only lines whose `split` field is this")
    parser.add_argument("--config", "-c", help="YAML config: routes, prices, threshold (default: the shipped one)")
    parser.add_argument("--head", help="head file (default: the config's classifier.head, else the shipped head)")
    parser.add_argument("--classifier", choices=["local", "rules"], default="local")
    parser.add_argument("--prompt-tokens", type=int, default=500, help="tokens per request, for cost (default 500)")
    parser.add_argument("--completion-tokens", type=int, default=300, help="(default 300)")


def configure_eval(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--threshold", type=float, help="confidence threshold (default: the config's)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")


def configure_calibrate(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--max-under-routing", type=float, default=0.03, help="bound on under-routing (default 0.03)")
    parser.add_argument("--out", help="YAML config to write classifier.threshold into")


def _load(args: argparse.Namespace) -> tuple[TriageConfig, list[Routed]]:
    config = load_config(args.config)
    rows = read_jsonl(args.data, split=args.split)
    if not rows:
        raise ConfigError(f"{args.data}: no labeled lines" + (f" in split {args.split!r}" if args.split else ""))
    return config, decide_all(_classifier(args, config), rows)


def _print_report(m: dict[str, Any]) -> None:
    print(f"items {m['n']}  threshold {m['threshold']:.3f}  cheapest route {m['cheapest_route']}")
    print(f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    print(
        f"under-routing {m['under_routing']:.2%}  fallback {m['fallback_share']:.2%}  cost vs all-strong "
        f"{m['cost_ratio']:.3f}"
    )
    print(f"decision latency p50 {m['p50_ms']:.3f} ms  p99 {m['p99_ms']:.3f} ms")
    labels = list(m["confusion"])
    width = max(10, *(len(c) for c in labels)) + 2
    print("\n" + "label".ljust(width) + "precision  recall  support")
    for c, s in m["per_label"].items():
        print(c.ljust(width) + f"{s['precision']:9.3f} {s['recall']:7.3f} {s['support']:8d}")
    print("\nconfusion (rows: label, columns: predicted)")
    print("".ljust(width) + "".join(c.rjust(width) for c in labels))
    for t in labels:
        print(t.ljust(width) + "".join(str(m["confusion"][t][p]).rjust(width) for p in labels))


def run_eval(args: argparse.Namespace) -> int:
    config, routed = _load(args)
    threshold = args.threshold if args.threshold is not None else config.classifier.threshold
    m = route_metrics(
        routed, config, threshold, prompt_tokens=args.prompt_tokens, completion_tokens=args.completion_tokens
    )
    _print_report(m)
    if args.json:
        keys = (
            "accuracy",
            "macro_f1",
            "under_routing",
            "fallback_share",
            "cost_ratio",
            "p50_ms",
            "p99_ms",
            "n",
            "threshold",
        )
        print(json.dumps({k: m[k] for k in keys}))
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    config, routed = _load(args)
    threshold, under, fallback = choose_threshold(routed, cheapest_category(config), args.max_under_routing)
    m = route_metrics(
        routed, config, threshold, prompt_tokens=args.prompt_tokens, completion_tokens=args.completion_tokens
    )
    print(
        f"threshold {threshold:.4f}: under-routing {under:.2%} (bound {args.max_under_routing:.2%}), fallback "
        f"{fallback:.2%}, cost vs all-strong {m['cost_ratio']:.3f}, on {len(routed)} items"
    )
    if args.out:
        path = Path(args.out)
        if not path.exists():
            print(f"triage calibrate: {path} does not exist (copy a config there first)", file=sys.stderr)
            return 2
        set_threshold(path, threshold)
        print(f"wrote classifier.threshold: {threshold:.4f} to {path}")
    return 0
