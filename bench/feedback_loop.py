"""The learning loop on traffic the router never saw: a reviewer corrects each misroute, the head is retrained every
N corrections (through `triage.learn.retrain`, poisoning guard included), and macro-F1 is measured on the part
of the traffic nobody has looked at yet.

    python bench/feedback_loop.py [--source hwu64 ...] [--every 20] [--budget 100] [--base product] [--no-anchor]

- Starting head: fitted like the shipped one (exemplars, then the labeled development set's `train` split) but
  with every item of the left-out source(s) removed, so that source is new traffic.
- Traffic: the left-out sources' items (both splits), shuffled; the first 80% flow past the reviewer, the last
  20% are the unseen remainder every row of the table is scored on.
- Retraining (`--base product`, the default) has what the product has: the exemplars and the corrections (the
  development set's text never ships), shrunk towards the starting head as the product's towards the shipped one
  (`--no-anchor`: from scratch). `--base full` adds the development set's train split, as if the base set the
  starting head came from shipped. The control row is the retrain base with no corrections at all.
- Guard set: the held-out fifth of the exemplars, as in the product (`triage.learn.base_data`).
- "others F1": macro-F1 on the development test split of the sources that were not left out: what learning the
  new traffic costs on the old.
- Macro-F1 on the remainder averages the categories present in it (a prediction of a category the remainder
  does not contain counts as a miss of the true one).

Reads ../shared/data/dev.jsonl (development data: the bench may read it, the product never does). Prints a table,
then one JSON line. Goal: +10 points of macro-F1 after 100 corrections, each retrain under 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
# One BLAS thread: the head's matrices are small, and on a busy 2-core machine OpenBLAS's threads fight each other
# (a 3,700-example fit measured 10 s with the default threads, 1.6 s with one). Must precede numpy's import.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from triage._config import TriageConfig  # noqa: E402
from triage.classify._evaluation import macro_f1  # noqa: E402
from triage.learn import (  # noqa: E402
    BaseData,
    HeadTrainer,
    HeadVersions,
    LabeledText,
    base_data,
    retrain,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev.jsonl"
CATEGORIES = ("simple", "reasoning", "tool_use")


def config() -> TriageConfig:
    return TriageConfig.model_validate({
        "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "p", "upstream_id": "m"}},
        "routes": {c: {"models": ["m"]} for c in CATEGORIES},
    })


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--source", action="append",
                        help="source left out of training (repeatable; default: hwu64, banking77 and snips, the "
                             "assistant, support and device-command sources: enough misroutes for 100 corrections)")
    parser.add_argument("--every", type=int, default=20, help="retrain after this many new corrections")
    parser.add_argument("--budget", type=int, default=100, help="stop after this many corrections")
    parser.add_argument("--weight", type=float, default=3.0)
    parser.add_argument("--tolerance", type=float, default=0.02, help="the poisoning guard's tolerance (as retrain)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", choices=["product", "full"], default="product",
                        help="retrain on what the product has (exemplars + corrections; the default) or also on the "
                             "development set's train split (as if the base set the starting head came from shipped)")
    parser.add_argument("--traffic", type=float, default=0.8, help="share of the left-out items the reviewer sees")
    parser.add_argument("--anchor", action=argparse.BooleanOptionalAction, default=True,
                        help="anchor retrains to the starting head (the product's default; --no-anchor: from scratch)")
    args = parser.parse_args()
    sources = set(args.source or ["hwu64", "banking77", "snips"])
    if not args.data.exists():
        print(json.dumps({"bench": "feedback_loop", "skipped": f"no data at {args.data}"}))
        return 0
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    left_out = [r for r in rows if r["source"] in sources]
    kept = [r for r in rows if r["source"] not in sources]
    exemplars = base_data()
    dev_train = [r for r in kept if r["split"] == "train"]
    # The starting head is fitted like the shipped one: exemplars plus the development set's train split.
    start_texts = exemplars.train_texts + [r["text"] for r in dev_train]
    start_labels = exemplars.train_labels + [r["label"] for r in dev_train]
    extra = dev_train if args.base == "full" else []
    base = BaseData(
        exemplars.train_texts + [r["text"] for r in extra],
        exemplars.train_labels + [r["label"] for r in extra],
        exemplars.eval_texts,
        exemplars.eval_labels,
        exemplars.source,
    )
    random.Random(args.seed).shuffle(left_out)
    cut = int(len(left_out) * args.traffic)
    traffic, remainder = left_out[:cut], left_out[cut:]
    truth = [r["label"] for r in remainder]
    present = [c for c in CATEGORIES if c in truth]

    trainer = HeadTrainer(config(), prior=None)
    started = time.perf_counter()
    head = trainer.fit(start_texts, start_labels, [1.0] * len(start_texts))
    first_fit = time.perf_counter() - started
    if args.anchor:
        trainer.prior = head  # retrains are anchored to the starting head, as the product's to the shipped one

    others = [r for r in kept if r["split"] == "test"]

    def score(h: Any) -> tuple[float, float]:
        predicted = trainer.predict(h, [r["text"] for r in remainder])
        accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
        return macro_f1(truth, predicted, present), accuracy

    def elsewhere(h: Any) -> float:
        """Macro-F1 on the development test split of the other sources: what learning the new traffic costs."""
        labels = [r["label"] for r in others]
        return macro_f1(labels, trainer.predict(h, [r["text"] for r in others]), CATEGORIES)

    # Control: the retrain base alone, no corrections. The gain that counts is over the better of it and the start.
    control_f1, control_acc = score(trainer.fit(base.train_texts, base.train_labels, [1.0] * len(base.train_texts)))

    with tempfile.TemporaryDirectory() as tmp:
        versions = HeadVersions(Path(tmp) / "heads")
        staging = versions.staging()
        trainer.save(head, staging)
        versions.install(staging, {"note": "starting head"})
        f1, acc = score(head)
        table: list[dict[str, Any]] = [{"corrections": 0, "seen": 0, "version": versions.current(), "installed": "",
                                        "retrain_s": None, "f1": f1, "accuracy": acc, "guard_f1": None,
                                        "others_f1": elsewhere(head)}]
        corrections: list[LabeledText] = []
        seen = since_retrain = 0
        for i, row in enumerate(traffic):
            if len(corrections) >= args.budget:
                break
            seen = i + 1
            [predicted] = trainer.predict(head, [row["text"]])
            if predicted != row["label"]:  # the reviewer corrects each misroute
                corrections.append(LabeledText(f"req_{i}", row["text"], row["label"], predicted, time.time()))
                since_retrain += 1
            last = seen == len(traffic) or len(corrections) == args.budget
            if since_retrain == args.every or (since_retrain and last):
                since_retrain = 0
                report = retrain(trainer, base, corrections, versions, categories=CATEGORIES, weight=args.weight,
                                 tolerance=args.tolerance)
                if report.installed:
                    head = trainer.load(versions.path_of(versions.current()))
                f1, acc = score(head)
                table.append({"corrections": len(corrections), "seen": seen, "version": versions.current(),
                              "installed": "yes" if report.installed else "refused", "retrain_s": report.seconds,
                              "f1": f1, "accuracy": acc, "guard_f1": report.new_shipped.macro_f1,
                              "others_f1": elsewhere(head)})

    print(f"left out: {', '.join(sorted(sources))}; traffic {len(traffic)}, unseen remainder {len(remainder)} "
          f"({', '.join(f'{c} {truth.count(c)}' for c in present)}); starting head on {len(start_texts)} examples "
          f"({first_fit:.2f} s); retrain base ({args.base}{', anchored to the start' if args.anchor else ''}) "
          f"{len(base.train_texts)} examples; guard set: "
          f"{base.source}, {len(base.eval_texts)}")
    print(f"control, the retrain base with no corrections: macro-F1 {control_f1:.3f}, accuracy {control_acc:.3f}")
    print(f"{'corrections':>11} {'seen':>5} {'version':>8} {'installed':>9} {'retrain s':>9} "
          f"{'macro-F1':>8} {'accuracy':>8} {'guard F1':>8} {'others F1':>9}")
    for r in table:
        retrain_s = f"{r['retrain_s']:.2f}" if r["retrain_s"] is not None else "-"
        guard = f"{r['guard_f1']:.3f}" if r["guard_f1"] is not None else "-"
        print(f"{r['corrections']:>11} {r['seen']:>5} {r['version']:>8} {r['installed']:>9} {retrain_s:>9} "
              f"{r['f1']:>8.3f} {r['accuracy']:>8.3f} {guard:>8} {r['others_f1']:>9.3f}")
    start, end = table[0], table[-1]
    times = [r["retrain_s"] for r in table if r["retrain_s"] is not None]
    gain = (end["f1"] - start["f1"]) * 100
    gain_over_control = (end["f1"] - max(start["f1"], control_f1)) * 100
    summary = {
        "bench": "feedback_loop",
        "left_out": sorted(sources),
        "base": args.base,
        "anchored": args.anchor,
        "corrections": end["corrections"],
        "seen": end["seen"],
        "macro_f1_start": round(start["f1"], 4),
        "macro_f1_end": round(end["f1"], 4),
        "macro_f1_control": round(control_f1, 4),
        "others_f1_start": round(start["others_f1"], 4),
        "others_f1_end": round(end["others_f1"], 4),
        "gain_points": round(gain, 2),
        "gain_over_control_points": round(gain_over_control, 2),
        "retrains": len(times),
        "refused": sum(r["installed"] == "refused" for r in table),
        "max_retrain_s": max(times) if times else None,
        "goal_met": gain >= 10 and end["corrections"] >= min(100, args.budget) and bool(times) and max(times) < 5,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
