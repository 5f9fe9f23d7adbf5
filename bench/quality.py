"""Routing quality on traffic the router never saw (issue 16): leave-one-source-out over every source.

For each of the sources of the development set (`../shared/data/dev.jsonl`) and of the public sets that
`bench/data/build.py` gathers, a head is trained with the shipped recipe (`bench/data/ship.py`) on all the other
sources and the project's exemplars, and routes the left-out source; confidences come from one temperature fitted
on these out-of-source predictions, and the routing uses the shipped config's bars. Also measured, on the head as it
ships: the development test split (in-source), the project's hand-written evaluation set (`bench/data/written/`,
never trained on), and the decision latency one request at a time.

    .venv/bin/python bench/quality.py                 # ~15 minutes on 2 cores
    .venv/bin/python bench/quality.py --sources 6     # a quick look: the 6 largest sources only

Prints the per-source table, then as its last line one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH / "data")]

from _load import json_line  # noqa: E402
from ship import BAGS, BALANCE, BUILT, DEV, EXEMPLAR_WEIGHT, rows  # noqa: E402

from triage import load_config  # noqa: E402
from triage.classify import (  # noqa: E402
    LocalClassifier,
    bars_of,
    cheapest_category,
    choose_threshold,
    decide_all,
    load_exemplars,
    route_metrics,
)
from triage.classify._loso import leave_one_source_out  # noqa: E402
from triage.cli._evaluate import print_source_table  # noqa: E402

WRITTEN = BENCH / "data" / "written" / "eval.jsonl"
GOALS = {"loso_macro_f1": 0.92, "loso_under_routing": 0.03, "loso_fallback_share": 0.20,
         "loso_confident_under_routing": 0.01, "worst_source_accuracy": 0.85, "dev_test_macro_f1": 0.97}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--built", type=Path, default=BUILT)
    parser.add_argument("--sources", type=int, default=0, help="only the N largest sources (0: all)")
    parser.add_argument("--dump", type=Path, help="write each request's out-of-source decision here (JSONL)")
    args = parser.parse_args(argv)
    for path in (args.dev, args.built):
        if not path.exists():
            print(f"quality.py: no {path} (bench/data/README.md says how to build it)", file=sys.stderr)
            return 2
    started = time.perf_counter()
    config = load_config()
    data = list(rows(args.dev, args.built))
    if args.sources:
        sizes: dict[str, int] = {}
        for row in data:
            sizes[row["source"]] = sizes.get(row["source"], 0) + 1
        keep = set(sorted(sizes, key=lambda s: -sizes[s])[: args.sources])
        data = [row for row in data if row["source"] in keep]
    n_sources = len({row["source"] for row in data})
    print(f"leave-one-source-out over {n_sources} sources, {len(data)} requests", flush=True)
    loso = leave_one_source_out(
        data, categories=config.categories, base=load_exemplars(), base_weight=EXEMPLAR_WEIGHT, balance=BALANCE,
        bags=BAGS,
        progress=lambda source: print(f"  {source}", flush=True),
    )
    bars = bars_of(config)
    m = route_metrics(loso.routed, config, bars)
    if args.dump:
        with args.dump.open("w", encoding="utf-8") as file:
            for row, r in zip(data, loso.routed, strict=True):
                file.write(json.dumps({"text": row["text"], "label": r.label, "source": r.source,
                                       "predicted": r.category, "confidence": round(r.confidence, 4)}) + "\n")
    print(f"\nout-of-source temperature {loso.temperature:.3f}; bars {bars}")
    print_source_table(m["per_source"])
    cheap = cheapest_category(config)
    bound_bar, _, _ = choose_threshold(loso.routed, cheap, 0.03)
    at_bound = route_metrics(loso.routed, config, bars_of(config, cheap_bar=bound_bar), per_source=False)

    shipped = LocalClassifier.load(categories=config.categories)
    dev_test = [row for row in rows(args.dev, args.built) if row["split"] == "test"]
    dev = route_metrics(decide_all(shipped, dev_test), config, bars, per_source=False)
    written_rows = [json.loads(line) for line in WRITTEN.read_text(encoding="utf-8").splitlines()]
    written = route_metrics(decide_all(shipped, written_rows), config, bars, per_source=False)
    worst = min(m["per_source"].items(), key=lambda kv: kv[1]["accuracy"])

    print(f"\n{'':34}{'macro-F1':>9}{'under':>8}{'conf.u':>8}{'fallback':>9}{'cost':>7}")
    for name, f in (("leave-one-source-out", m), (f"  same, {cheap} bar {bound_bar:.3f}", at_bound),
                    ("dev test split (shipped head)", dev), ("hand-written eval (shipped head)", written)):
        print(f"{name:34}{f['macro_f1']:>9.3f}{f['under_routing']:>8.2%}{f['confident_under_routing']:>8.2%}"
              f"{f['fallback_share']:>9.2%}{f['cost_ratio']:>7.3f}")
    print(f"decision latency (shipped head, dev test split, one at a time): p50 {dev['p50_ms']:.3f} ms, "
          f"p99 {dev['p99_ms']:.3f} ms")
    figures: dict[str, Any] = {
        "bench": "quality",
        "loso_macro_f1": round(m["macro_f1"], 4),
        "loso_accuracy": round(m["accuracy"], 4),
        "loso_under_routing": round(m["under_routing"], 4),
        "loso_confident_under_routing": round(m["confident_under_routing"], 4),
        "loso_fallback_share": round(m["fallback_share"], 4),
        "loso_cost_ratio": round(m["cost_ratio"], 4),
        "loso_temperature": round(loso.temperature, 3),
        "bars": bars,
        "bar_for_3pct_under_routing": bound_bar,
        "fallback_share_at_3pct_under_routing": round(at_bound["fallback_share"], 4),
        "worst_source": worst[0],
        "worst_source_accuracy": round(worst[1]["accuracy"], 4),
        "sources_below_085": sorted(s for s, f in m["per_source"].items() if f["accuracy"] < 0.85),
        "sources": n_sources,
        "requests": len(data),
        "dev_test_macro_f1": round(dev["macro_f1"], 4),
        "dev_test_under_routing": round(dev["under_routing"], 4),
        "written_macro_f1": round(written["macro_f1"], 4),
        "written_under_routing": round(written["under_routing"], 4),
        "written_fallback_share": round(written["fallback_share"], 4),
        "decision_p50_ms": round(dev["p50_ms"], 4),
        "decision_p99_ms": round(dev["p99_ms"], 4),
        "per_source_accuracy": {s: round(f["accuracy"], 4) for s, f in m["per_source"].items()},
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    met = {
        "loso_macro_f1": figures["loso_macro_f1"] >= GOALS["loso_macro_f1"],
        "loso_under_routing": figures["loso_under_routing"] <= GOALS["loso_under_routing"]
        and figures["loso_fallback_share"] <= GOALS["loso_fallback_share"],
        "loso_confident_under_routing": figures["loso_confident_under_routing"] <= 0.01,
        "worst_source_accuracy": figures["worst_source_accuracy"] >= GOALS["worst_source_accuracy"],
        "dev_test_macro_f1": figures["dev_test_macro_f1"] >= GOALS["dev_test_macro_f1"],
        "decision_latency": figures["decision_p50_ms"] <= 0.5 and figures["decision_p99_ms"] <= 5,
    }
    figures["goals_met"] = met
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    print(json_line(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
