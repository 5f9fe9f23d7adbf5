"""`triage retrain`, `triage rollback` and `triage anchor`: refit the local classifier's head on the reviewers'
corrections and install it if the guard accepts it (see `triage.learn._retrain`); put an earlier version back; pin
the version every candidate is judged against.

`--force` installs a refused candidate anyway (with a warning).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from triage._config import load_config
from triage.learn import HeadStore, HeadVersions, LabeledText, base_data, default_trainer, head_store, open_store
from triage.learn._retrain import Scores, retrain

__all__ = ["configure_anchor", "configure_retrain", "configure_rollback", "run_anchor", "run_retrain", "run_rollback"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")
    parser.add_argument("--heads", help="directory of head versions (default: heads/ beside store.path, or the "
                        "database with store.url)")


def configure_retrain(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    # 5: bench/feedback_loop.py's curve (+13 to +41 points of accuracy within 50 corrections on six left-out
    # sources) with the least cost elsewhere of the weights tried (10 cost more, 3 learnt slower).
    parser.add_argument("--weight", type=float, default=5.0, help="weight of a correction against a base example")
    parser.add_argument("--holdout", type=float, default=0.2, help="share of corrections kept aside for judging")
    parser.add_argument("--store", help="SQLite file to read corrections from (default: store.path)")
    # About one standard error of accuracy on the ~300 held-out exemplars: a smaller bar refuses honest
    # corrections on noise; a poisoned batch costs far more (tests/test_retrain.py: over 10 points).
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="largest drop in macro-F1 on the shipped evaluation set still accepted (default 0.02)")
    parser.add_argument("--force", action="store_true", help="install even if the candidate is worse")


def configure_rollback(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--to", help="the version to put in service (default: the one before the current)")


def _versions(args: argparse.Namespace) -> HeadStore:
    return HeadVersions(Path(args.heads)) if args.heads else head_store(load_config(args.config))


def _fmt(scores: Scores) -> str:
    if scores.macro_f1 is None or scores.accuracy is None:
        return "n/a"
    return f"macro-F1 {scores.macro_f1:.3f}, accuracy {scores.accuracy:.3f} (n={scores.n})"


def run_retrain(args: argparse.Namespace) -> int:
    # One BLAS thread: the head's matrices are small, and on a busy 2-core machine OpenBLAS's threads fight each
    # other (a 3,700-example fit: 10 s with the default threads, 1.6 s with one). Only before numpy's import.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    versions = _versions(args)
    try:
        return _retrain(args, versions)
    finally:
        versions.close()


def _retrain(args: argparse.Namespace, versions: HeadStore) -> int:
    config = load_config(args.config)

    async def corrections() -> list[LabeledText]:
        async with open_store(config.store) as store:
            return await store.labeled_texts()

    if args.store:
        config = config.model_copy(update={"store": config.store.model_copy(update={"path": args.store})})
    shared = config.store.url is not None
    examples = asyncio.run(corrections()) if shared or Path(config.store.path).exists() else []
    if config.store.text == "none":
        print("triage retrain: store.text is none: corrections have no text to learn from", file=sys.stderr)
    report = retrain(
        default_trainer(config, progress=sys.stderr.isatty()), base_data(), examples, versions,
        categories=config.categories, weight=args.weight, holdout=args.holdout, tolerance=args.tolerance,
        force=args.force,
    )
    print(f"base examples: {report.base_examples}; corrections: {report.corrections_train} to train on, "
          f"{report.corrections_holdout} held out")
    print(f"shipped set    old ({report.previous}): {_fmt(report.old_shipped)}")
    if report.reference_shipped is not None:
        print(f"               {report.reference}: {_fmt(report.reference_shipped)} (the guard's reference)")
    print(f"               new: {_fmt(report.new_shipped)}")
    print(f"held-out corr. old: {_fmt(report.old_holdout)}")
    print(f"               new: {_fmt(report.new_holdout)}")
    if not report.installed:
        print(f"refused: {report.reason}. Nothing changed; --force installs it anyway.", file=sys.stderr)
        return 1
    if report.forced:
        print(f"WARNING: installed despite the guard (--force): {report.reason}", file=sys.stderr)
    print(f"installed {report.version} in {report.seconds:.2f} s; running servers load it within a second "
          f"(or POST /v1/admin/reload); `triage rollback` restores {report.previous}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    versions = _versions(args)
    try:
        return _rollback(args, versions)
    finally:
        versions.close()


def _rollback(args: argparse.Namespace, versions: HeadStore) -> int:
    try:
        if args.to:
            before = versions.current()
            if args.to not in (*versions.versions(), "default"):
                print(f"triage rollback: no version {args.to!r} in {versions.location}", file=sys.stderr)
                return 1
            versions.set_current(args.to)
            versions.log("rollback", version=args.to, previous=before)
            after = args.to
        else:
            before, after = versions.rollback()
    except LookupError as exc:
        print(f"triage rollback: {exc}", file=sys.stderr)
        return 1
    print(f"{before} -> {after}; running servers load it within a second (or POST /v1/admin/reload)")
    return 0


def configure_anchor(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("version", nargs="?", help="the version to pin (`default`: the shipped head); none: show it")


def run_anchor(args: argparse.Namespace) -> int:
    versions = _versions(args)
    try:
        return _anchor(args, versions)
    finally:
        versions.close()


def _anchor(args: argparse.Namespace, versions: HeadStore) -> int:
    if args.version is None:
        print(versions.anchor())
        return 0
    try:
        versions.pin_anchor(args.version)
    except LookupError as exc:
        print(f"triage anchor: {exc}", file=sys.stderr)
        return 1
    print(f"retraining now judges every candidate against {args.version}")
    return 0
