"""Print N random items per source (and label) of a built routing file, for reading against the rule.

    python3 bench/data/spotcheck.py bench/data/build/routing.jsonl [-n 30] [--source slurp] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import random


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--source")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--width", type=int, default=300, help="characters of each text shown")
    args = ap.parse_args()
    by = collections.defaultdict(list)
    with open(args.path, encoding="utf-8") as f:
        for line in f:
            it = json.loads(line)
            if args.source in (None, it["source"]):
                by[it["source"]].append(it)
    for name in sorted(by):
        items = by[name]
        pick = random.Random(f"{args.seed}|{name}").sample(items, min(args.n, len(items)))
        print(f"===== {name} ({len(items)} items)")
        for it in sorted(pick, key=lambda x: (x["label"], x["orig"])):
            text = it["text"].replace("\n", " / ")[: args.width]
            prior = f"  [prior: {' / '.join(it['prior_user'])}]" if it.get("prior_user") else ""
            print(f"{it['label'][:4]} {it['orig'][:28]:<28} {text}{prior}")
    print(json.dumps({"sources": len(by), "shown": sum(min(args.n, len(v)) for v in by.values())}))


if __name__ == "__main__":
    main()
