"""`triage eval` and `triage calibrate`: how a classifier routes a labeled JSONL file, and the threshold to use.

    triage eval --data labeled.jsonl [--split test] [--head PATH] [--config triage.yaml] [--json]
    triage calibrate --data labeled.jsonl --max-under-routing 0.03 [--out triage.yaml]

The figures (accuracy, macro-F1, per-label precision/recall, confusion, under-routing, fallback share, cost against
all-strong, decision latency) are defined in `triage.classify._evaluation`. `calibrate` picks the lowest threshold whose
under-routing stays within the bound (the least fallback), prints it, and with `--out` writes it to the config's
`classifier.threshold`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from triage._config import TriageConfig, load_config
from triage._exceptions import ConfigError
from triage.classify import (
    Routed,
    RulesClassifier,
    cheapest_category,
    choose_threshold,
    decide_all,
    read_jsonl,
    route_metrics,
)

__all__ = ["configure_calibrate", "configure_eval", "run_calibrate", "run_eval", "set_threshold"]


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
    from triage.classify import LocalClassifier

    return LocalClassifier.load(args.head or config.classifier.head, categories=config.categories)




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
