"""Train the head Triage ships (`server/triage/data/head.npz`) from the development set, the public sources that
`build.py` gathers, and the project's own exemplars, with the recipe `bench/quality.py` measures.

    python3 bench/data/build.py --mirrors /work/.mirror --out bench/data/build/routing.jsonl \
        --dev ../shared/data/dev.jsonl
    .venv/bin/python bench/data/ship.py            # writes server/triage/data/head.npz

Only weights ship (hashed n-gram and embedding weights, prototypes that average many requests): no text of the
sources. Lines whose source is licensed for evaluation only (`"train": false`) are never trained on, nor is the
development set's test split, which stays the in-source check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEV = ROOT.parent / "shared" / "data" / "dev.jsonl"
BUILT = HERE / "build" / "routing.jsonl"
HEAD = ROOT / "server" / "triage" / "data" / "head.npz"

# The recipe (bench/quality.py measures it leave-one-source-out): each source weighs at most BALANCE lines, so a
# big source teaches its own convention no louder than a small one; the project's exemplars, written to cover each
# route from many angles, count EXEMPLAR_WEIGHT lines each; the head is the mean of BAGS heads, each fitted without
# its own BAGS-th of the sources (`triage.classify.local.Bags`), so no single source's convention carries it.
BALANCE = 400.0
EXEMPLAR_WEIGHT = 2.5
BAGS = 4


def source_of(row: dict[str, Any]) -> str:
    """One name per source: the development set names BFCL's categories `bfcl:<category>`."""
    return str(row["source"]).split(":")[0]


def rows(dev: Path, built: Path) -> Iterator[dict[str, Any]]:
    """Every labeled line of both files as {text, label, source, train, split}; `train` is False for what may not
    be trained on (evaluation-only licenses)."""
    for path in (dev, built):
        with path.open(encoding="utf-8") as file:
            for line in file:
                row = json.loads(line)
                yield {
                    "text": row["text"], "label": row["label"], "source": source_of(row),
                    "train": bool(row.get("train", True)), "split": row.get("split"),
                }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--built", type=Path, default=BUILT)
    parser.add_argument("--out", type=Path, default=HEAD)
    args = parser.parse_args(argv)
    for path in (args.dev, args.built):
        if not path.exists():
            print(f"ship.py: no {path} (see the docstring for how to build it)", file=sys.stderr)
            return 2
    from triage.cli import main as triage

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        with data.open("w", encoding="utf-8") as file:
            for row in rows(args.dev, args.built):
                if row["train"] and row["split"] != "test":
                    file.write(json.dumps({k: row[k] for k in ("text", "label", "source")}) + "\n")
        return triage([
            "train", "--data", str(data), "--exemplars", "--exemplar-weight", str(EXEMPLAR_WEIGHT),
            "--balance", str(BALANCE), "--bags", str(BAGS), "--out", str(args.out),
        ])


if __name__ == "__main__":
    raise SystemExit(main())
