"""`triage train`: fit the local classifier's head on a labeled JSONL file and/or the shipped exemplars.

    triage train --data labeled.jsonl --out head.npz                  # one {"text", "label"} object a line
    triage train --data dev.jsonl --split train --exemplars --out server/triage/data/head.npz
    triage train --exemplars --out head.npz                           # the project's own exemplars alone

Other fields of a line are ignored, but `split` filters with `--split`, a `weight` (default 1) weighs the line, a
line with `"train": false` (a source licensed for evaluation only) is skipped, and `source` names where it came
from. With sources, the head is calibrated on folds that hold out whole sources (how it does on traffic it never
saw), `--balance N` caps each source's weight at N lines, and `--bags K` averages K heads each fitted without its
own K-th of the sources; otherwise it is calibrated on k-fold out-of-fold logits (`--folds`).
See `triage.classify.local._head`. The shipped head: `python bench/data/ship.py` (bench/data/README.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from triage.classify import DEFAULT_CATEGORIES, DEFAULT_EXEMPLAR_WEIGHT, load_exemplars, read_jsonl, train_head
from triage.classify._data import balanced_weights

__all__ = ["configure_train", "run_train"]


def _categories(labels: Sequence[str]) -> list[str]:
    # The shipped categories first, in their usual order; any others after, sorted.
    present = set(labels)
    return [c for c in DEFAULT_CATEGORIES if c in present] + sorted(present - set(DEFAULT_CATEGORIES))


def configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", default=[], help="labeled JSONL file (repeatable)")
    parser.add_argument("--split", help="use only lines whose `split` field is this (lines without one are kept)")
    parser.add_argument("--exemplars", action="store_true", help="also train on the shipped exemplars")
    parser.add_argument("--exemplars-file", help="train on this exemplars YAML instead of the shipped one")
    parser.add_argument(
        "--exemplar-weight",
        type=float,
        default=DEFAULT_EXEMPLAR_WEIGHT,
        help=f"weight of an exemplar against a data line (default {DEFAULT_EXEMPLAR_WEIGHT})",
    )
    parser.add_argument("--balance", type=float, help="cap each source's total weight at this many lines")
    parser.add_argument("--bags", type=int, default=1,
                        help="with sources: average this many heads, each without its own share of them (default 1)")
    parser.add_argument("--out", required=True, help="where to write the head (.npz)")
    parser.add_argument("--c", type=float, default=10.0, help="inverse L2 strength, as scikit-learn's C (default 10)")
    parser.add_argument("--folds", type=int, default=5, help="folds for the calibration temperature (default 5)")
    parser.add_argument("--seed", type=int, default=0)


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    texts: list[str] = []
    labels: list[str] = []
    weights: list[float] = []
    sources: list[str] = []
    for path in args.data:
        rows = [r for r in read_jsonl(path, split=args.split) if r.get("train", True) is not False]
        texts += [str(r["text"]) for r in rows]
        labels += [str(r["label"]) for r in rows]
        weights += [float(r.get("weight", 1.0)) for r in rows]
        sources += [str(r.get("source", "")) for r in rows]
    if args.exemplars or args.exemplars_file:
        pairs = load_exemplars(args.exemplars_file)
        texts += [t for t, _ in pairs]
        labels += [c for _, c in pairs]
        weights += [args.exemplar_weight] * len(pairs)
        sources += [""] * len(pairs)  # the project's own: always trained on, never a held-out source
    weights = [w * cap for w, cap in zip(weights, balanced_weights(sources, args.balance), strict=True)]
    if not texts:
        print("triage train: nothing to train on (give --data and/or --exemplars)", file=sys.stderr)
        return 2
    categories = _categories(labels)
    steps = 2 + (args.folds if args.folds >= 2 else 0)
    with tqdm(total=steps, desc="training", unit="step", disable=None, file=sys.stderr) as bar:

        def progress(stage: str) -> None:
            bar.set_postfix_str(stage)
            bar.update(1)

        head = train_head(
            texts,
            labels,
            sample_weight=weights,
            categories=categories,
            c=args.c,
            folds=args.folds,
            seed=args.seed,
            groups=sources if any(sources) else None,
            bags=args.bags,
            progress=progress,
        )
    named = sorted(set(sources) - {""})
    head.meta["sources"] = (named or [Path(p).name for p in args.data]) + (["exemplars"] if args.exemplars else [])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head.save(out)
    counts = ", ".join(f"{c} {n}" for c, n in head.meta["per_category"].items())
    oof = head.meta["out_of_fold_accuracy"]
    print(f"trained on {len(texts)} texts ({counts}) in {head.meta['seconds']} s")
    if oof is not None:
        print(f"out-of-fold accuracy {oof:.3f}; calibration temperature {head.temperature:.3f}")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0
