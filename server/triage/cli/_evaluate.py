"""`triage eval` and `triage calibrate`: how a classifier routes a labeled JSONL file, and the bar to use.

    triage eval --data labeled.jsonl [--split test] [--head PATH] [--config triage.yaml] [--json]
    triage eval --data labeled.jsonl --loso [--exemplars] [--balance 400] [--bags 4]     # leave one source out
    triage calibrate --data labeled.jsonl [--loso] --max-under-routing 0.03 [--out triage.yaml]

The figures (accuracy, macro-F1, per-label precision/recall, confusion, under-routing and confident under-routing,
fallback share, cost against all-strong, decision latency) are defined in `triage.classify._evaluation`; lines
that name a `source` get a table per source. `--loso` trains, for each source, a head on the others (and, with
`--exemplars`, the shipped exemplars) and scores it on that source: generalisation, not memory. `calibrate` picks
the lowest bar for decisions of the cheapest route whose under-routing stays within the bound (the least
fallback), prints it, and with `--out` writes it to the config's `classifier.thresholds`; calibrated `--loso`,
the bar holds for sources the head never saw.
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
    DEFAULT_EXEMPLAR_WEIGHT,
    Routed,
    RulesClassifier,
    bars_of,
    cheapest_category,
    choose_threshold,
    decide_all,
    load_exemplars,
    read_jsonl,
    route_metrics,
)

__all__ = ["configure_calibrate", "configure_eval", "run_calibrate", "run_eval", "set_bar"]


def set_bar(path: Path, category: str, bar: float) -> None:
    """Write `classifier.thresholds.<category>` into a YAML config, keeping its comments and layout where it can."""
    text = path.read_text(encoding="utf-8")
    text += "" if text.endswith("\n") else "\n"
    value = f"{bar:.4f}".rstrip("0").rstrip(".")
    block = re.search(r"(?m)^classifier:[ \t]*\n((?:[ \t]+.*\n|[ \t]*\n)*)", text)
    if block is None:
        import yaml

        raw = yaml.safe_load(text) or {}
        if "classifier" in raw:  # a flow-style mapping: rewrite the file (comments are lost)
            classifier = dict(raw["classifier"])
            classifier["thresholds"] = {**classifier.get("thresholds", {}), category: float(value)}
            raw["classifier"] = classifier
            text = yaml.safe_dump(raw, sort_keys=False)
        else:
            text += f"classifier:\n  thresholds:\n    {category}: {value}\n"
    else:
        body = block.group(1)
        indent = re.match(r"[ \t]+", body)
        pad = indent.group(0) if indent else "  "
        sub = re.search(rf"(?m)^{pad}thresholds:[ \t]*\n((?:{pad}[ \t]+.*\n)*)", body)
        if sub is None:
            body = f"{pad}thresholds:\n{pad * 2}{category}: {value}\n" + body
        else:
            entries = sub.group(1)
            line = re.compile(rf"(?m)^([ \t]+){re.escape(category)}:.*$")
            if line.search(entries):
                entries = line.sub(lambda m: f"{m.group(1)}{category}: {value}", entries, count=1)
            else:
                entries += f"{pad * 2}{category}: {value}\n"
            body = body[: sub.start(1)] + entries + body[sub.end(1) :]
        text = text[: block.start(1)] + body + text[block.end(1) :]
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
    parser.add_argument("--loso", action="store_true",
                        help="leave one source out: train a head on the other sources, score it on each")
    parser.add_argument("--exemplars", action="store_true", help="with --loso: also train on the shipped exemplars")
    parser.add_argument("--balance", type=float, help="with --loso: cap each source's weight at this many lines")
    parser.add_argument("--bags", type=int, default=1,
                        help="with --loso: each head the mean of this many, as `triage train --bags` (default 1)")


def configure_eval(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--threshold", type=float, help="confidence threshold (default: the config's bars)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")


def configure_calibrate(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--max-under-routing", type=float, default=0.03, help="bound on under-routing (default 0.03)")
    parser.add_argument("--out", help="YAML config to write classifier.thresholds into")


def _load(args: argparse.Namespace) -> tuple[TriageConfig, list[Routed]]:
    config = load_config(args.config)
    rows = read_jsonl(args.data, split=args.split)
    if not rows:
        raise ConfigError(f"{args.data}: no labeled lines" + (f" in split {args.split!r}" if args.split else ""))
    if not args.loso:
        return config, decide_all(_classifier(args, config), rows)
    if any("source" not in row for row in rows):
        raise ConfigError(f"{args.data}: --loso needs a `source` on every line")
    from tqdm import tqdm

    from triage.classify._loso import leave_one_source_out

    sources = len({row["source"] for row in rows})
    with tqdm(total=sources, desc="leave one source out", unit=" source", disable=None, file=sys.stderr) as bar:
        result = leave_one_source_out(
            rows, categories=config.categories, base=load_exemplars() if args.exemplars else (),
            base_weight=DEFAULT_EXEMPLAR_WEIGHT, balance=args.balance, bags=args.bags,
            progress=lambda _: _advance(bar),
        )
    print(f"leave-one-source-out over {sources} sources; out-of-source temperature {result.temperature:.3f}")
    return config, result.routed


def _advance(bar: Any) -> None:
    bar.update()


def _print_report(m: dict[str, Any]) -> None:
    bars = ", ".join(f"{c} {b:.3f}" for c, b in m["bars"].items())
    print(f"items {m['n']}  bars {bars}  cheapest route {m['cheapest_route']}")
    print(f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    print(
        f"under-routing {m['under_routing']:.2%} (confident, >= 0.9: {m['confident_under_routing']:.2%})  fallback "
        f"{m['fallback_share']:.2%}  cost vs all-strong {m['cost_ratio']:.3f}"
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
    if m.get("per_source"):
        print_source_table(m["per_source"])


def print_source_table(per_source: dict[str, dict[str, Any]]) -> None:
    """One line per source: accuracy, each label's precision/recall, under-routing, confident under-routing,
    fallback share and cost against all-strong."""
    categories = list(next(iter(per_source.values()))["per_label"])
    width = max(8, *(len(s) for s in per_source)) + 2
    columns = "".join(f"{c[:8] + ' P/R':>14}" for c in categories)
    tail = f"{'under':>8}{'conf.u':>8}{'fallbk':>8}{'cost':>7}"
    print("\nsource".ljust(width + 1) + f"{'n':>6}{'acc':>7}" + columns + tail)
    for source, f in per_source.items():
        cells = "".join(
            f"{f['per_label'][c]['precision']:>7.2f}/{f['per_label'][c]['recall']:<6.2f}"
            if f["per_label"][c]["support"] or any(f["confusion"][t][c] for t in f["confusion"]) else f"{'-':>14}"
            for c in categories
        )
        print(
            source.ljust(width) + f"{f['n']:>6}{f['accuracy']:>7.3f}" + cells + f"{f['under_routing']:>8.2%}"
            f"{f['confident_under_routing']:>8.2%}{f['fallback_share']:>8.2%}{f['cost_ratio']:>7.3f}"
        )


_JSON_KEYS = (
    "accuracy", "macro_f1", "under_routing", "confident_under_routing", "fallback_share", "cost_ratio", "p50_ms",
    "p99_ms", "n", "threshold",
)


def run_eval(args: argparse.Namespace) -> int:
    config, routed = _load(args)
    m = route_metrics(
        routed, config, bars_of(config, threshold=args.threshold), prompt_tokens=args.prompt_tokens,
        completion_tokens=args.completion_tokens,
    )
    _print_report(m)
    if args.json:
        figures = {k: m[k] for k in _JSON_KEYS}
        if m.get("per_source"):
            figures["per_source"] = {s: {k: f[k] for k in _JSON_KEYS} for s, f in m["per_source"].items()}
        print(json.dumps(figures))
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    config, routed = _load(args)
    cheap = cheapest_category(config)
    bar, under, _ = choose_threshold(routed, cheap, args.max_under_routing)
    m = route_metrics(
        routed, config, bars_of(config, cheap_bar=bar), prompt_tokens=args.prompt_tokens,
        completion_tokens=args.completion_tokens, per_source=False,
    )
    print(
        f"{cheap} bar {bar:.4f}: under-routing {under:.2%} (bound {args.max_under_routing:.2%}), fallback "
        f"{m['fallback_share']:.2%}, cost vs all-strong {m['cost_ratio']:.3f}, on {len(routed)} items"
    )
    if args.out:
        path = Path(args.out)
        if not path.exists():
            print(f"triage calibrate: {path} does not exist (copy a config there first)", file=sys.stderr)
            return 2
        set_bar(path, cheap, bar)
        print(f"wrote classifier.thresholds.{cheap}: {bar:.4f} to {path}")
    return 0
