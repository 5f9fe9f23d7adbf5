"""`triage retrain` and `triage rollback`: refit the local classifier's head on its base data plus the reviewers'
corrections, judge it, and install it as a new version only if it is not worse where it matters.

    base data (shipped exemplars, + the base set the default head came from, if shipped)
      + corrections (weighted; a held-out share kept aside)       ──fit──▶ candidate head
    judge old and candidate on: the shipped evaluation set  ──▶ candidate worse by more than `tolerance`? refuse
                                the held-out corrections         (a batch of wrong labels cannot push out a
                                                                  head that still routes the shipped set well)
    (against the shipped default, which trained on the evaluation set's exemplars, the reference is a head fitted
     on the base data alone: the corrections must not make it worse)
    install: heads/vNNNN + `current` pointer ──▶ running servers reload within a second

`--force` installs a refused candidate anyway (with a warning); `triage rollback` puts the previous version back.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from triage._config import load_config
from triage._heads import DEFAULT_VERSION, HeadVersions, heads_dir
from triage._retrain_data import BaseData, Trainer, base_data, default_trainer, macro_f1
from triage._sqlite_store import open_store
from triage._store import LabeledText

__all__ = [
    "RetrainReport",
    "Scores",
    "configure_retrain",
    "configure_rollback",
    "retrain",
    "run_retrain",
    "run_rollback",
    "split_corrections",
]

logger = logging.getLogger("triage.retrain")


@dataclass(frozen=True, slots=True)
class Scores:
    macro_f1: float | None  # None: nothing to score on
    accuracy: float | None
    n: int


def _score(
    trainer: Trainer, head: Any, texts: Sequence[str], labels: Sequence[str], categories: Sequence[str]
) -> Scores:
    if not texts:
        return Scores(None, None, 0)
    predicted = trainer.predict(head, texts)
    accuracy = sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)
    return Scores(macro_f1(labels, predicted, categories), accuracy, len(labels))


@dataclass(slots=True)
class RetrainReport:
    installed: bool
    forced: bool
    version: str | None  # the version installed, if any
    previous: str  # the version in service before
    base_examples: int
    corrections_train: int
    corrections_holdout: int
    old_shipped: Scores
    new_shipped: Scores
    old_holdout: Scores
    new_holdout: Scores
    seconds: float
    # What the candidate had to match on the shipped set: "old head", or "base data alone" when the old head was
    # trained on the evaluation set itself (the shipped default: its score there says nothing).
    reference: str = "old head"
    control_shipped: Scores | None = None
    reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_corrections(examples: Sequence[LabeledText], holdout: float) -> tuple[list[LabeledText], list[LabeledText]]:
    """(train, held out). The split hashes the request id, so a correction stays on its side across retrains
    and the held-out share never leaks into a later version's training data."""
    train: list[LabeledText] = []
    held: list[LabeledText] = []
    for example in examples:
        digest = hashlib.sha256(example.request_id.encode()).digest()
        (held if int.from_bytes(digest[:4], "big") / 2**32 < holdout else train).append(example)
    return train, held


def retrain(
    trainer: Trainer,
    base: BaseData,
    corrections: Sequence[LabeledText],
    versions: HeadVersions,
    *,
    categories: Sequence[str],
    weight: float = 3.0,
    holdout: float = 0.2,
    tolerance: float = 0.02,
    force: bool = False,
) -> RetrainReport:
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 4)
        return now

    train, held = split_corrections([c for c in corrections if c.category in categories], holdout)
    previous = versions.current()
    old = trainer.load(versions.path_of(previous))
    t = lap("load", started)
    texts = [*base.train_texts, *(c.text for c in train)]
    labels = [*base.train_labels, *(c.category for c in train)]
    weights = [1.0] * len(base.train_texts) + [weight] * len(train)
    new = trainer.fit(texts, labels, weights)
    t = lap("fit", t)
    held_texts, held_labels = [c.text for c in held], [c.category for c in held]
    report = RetrainReport(
        installed=False, forced=False, version=None, previous=previous,
        base_examples=len(base.train_texts), corrections_train=len(train), corrections_holdout=len(held),
        old_shipped=_score(trainer, old, base.eval_texts, base.eval_labels, categories),
        new_shipped=_score(trainer, new, base.eval_texts, base.eval_labels, categories),
        old_holdout=_score(trainer, old, held_texts, held_labels, categories),
        new_holdout=_score(trainer, new, held_texts, held_labels, categories),
        seconds=0.0, timings=timings,
    )
    t = lap("evaluate", t)
    reference = report.old_shipped
    if previous == DEFAULT_VERSION and not base.eval_independent:
        # The default head was trained on the exemplars the evaluation set is cut from, so it scores ~1.0 there and
        # every candidate would be refused. Judge the corrections instead: the candidate against a head fitted on
        # the same base data without them (the very thing a poisoned batch would drag down).
        control = trainer.fit(base.train_texts, base.train_labels, [1.0] * len(base.train_texts))
        reference = report.control_shipped = _score(trainer, control, base.eval_texts, base.eval_labels, categories)
        report.reference = "base data alone"
        t = lap("control", t)
    old_f1, new_f1 = reference.macro_f1, report.new_shipped.macro_f1
    worse = old_f1 is not None and new_f1 is not None and new_f1 < old_f1 - tolerance
    if worse:
        report.reason = (f"macro-F1 on the shipped evaluation set would fall from {old_f1:.3f} ({report.reference}) "
                         f"to {new_f1:.3f} (tolerance {tolerance:.3f})")
    if not worse or force:
        staging = versions.staging()
        try:
            trainer.save(new, staging)
            meta = {"report": report.to_dict(), "weight": weight, "holdout": holdout, "forced": worse}
            report.version = versions.install(staging, meta)
        finally:
            versions.discard(staging)
        report.installed, report.forced = True, worse
    else:
        versions.log("refused", previous=previous, reason=report.reason)
    lap("install", t)
    report.seconds = round(time.perf_counter() - started, 4)
    return report


# -- the commands ---------------------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML config file (default: the shipped demo config)")
    parser.add_argument("--heads", help="directory of head versions (default: heads/ beside store.path)")


def configure_retrain(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--weight", type=float, default=3.0, help="weight of a correction against a base example")
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


def _versions(args: argparse.Namespace) -> HeadVersions:
    return HeadVersions(Path(args.heads) if args.heads else heads_dir(load_config(args.config)))


def _fmt(scores: Scores) -> str:
    if scores.macro_f1 is None or scores.accuracy is None:
        return "n/a"
    return f"macro-F1 {scores.macro_f1:.3f}, accuracy {scores.accuracy:.3f} (n={scores.n})"


def run_retrain(args: argparse.Namespace) -> int:
    # One BLAS thread: the head's matrices are small, and on a busy 2-core machine OpenBLAS's threads fight each
    # other (a 3,700-example fit: 10 s with the default threads, 1.6 s with one). Only before numpy's import.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    config = load_config(args.config)
    versions = _versions(args)

    async def corrections() -> list[LabeledText]:
        async with open_store(config.store) as store:
            return await store.labeled_texts()

    if args.store:
        config = config.model_copy(update={"store": config.store.model_copy(update={"path": args.store})})
    examples = asyncio.run(corrections()) if Path(config.store.path).exists() else []
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
    if report.control_shipped is not None:
        print(f"               base data alone: {_fmt(report.control_shipped)} (the guard's reference)")
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
        if args.to:
            before = versions.current()
            if args.to not in (*versions.versions(), "default"):
                print(f"triage rollback: no version {args.to!r} in {versions.root}", file=sys.stderr)
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
