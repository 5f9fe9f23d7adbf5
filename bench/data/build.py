"""Build labeled routing data from the public sources in `sources.py`.

    python3 bench/data/build.py --mirrors /work/.mirror --out bench/data/build/routing.jsonl \
        [--dev ../shared/data/dev.jsonl] [--seed 0] [--only slurp,hint3]

Reads every source from its git mirror at the pinned commit, labels it through the source's mapping,
cleans and filters the text, removes duplicates (within a source, across sources, and against the dev
set), samples each source evenly across its intents up to the source's cap, and writes one JSON object a
line: {"text", "label", "source", "orig", "train"[, "prior_user"]}.  Prints a table per source, then one
JSON object of totals as the last line.  Same mirrors + same seed -> byte-identical output.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _mirror import Mirrors
from sources import HOWTO_LOOKUP, HOWTO_Q, SOURCES, Source

LABELS = ("simple", "reasoning", "tool_use")
MIN_WORDS = 3
MAX_CHARS = 2000
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_NONWORD = re.compile(r"[\W_]+")


def clean(text: str) -> str:
    """Whitespace normalised: runs of spaces collapsed, lines stripped, at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def key(text: str) -> str:
    """Duplicate key: case-, punctuation-, whitespace- and compatibility-form-insensitive."""
    return _NONWORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def even_sample(items: list[dict], cap: int, rng_seed: str) -> list[dict]:
    """Round-robin over origs (each shuffled with its own seeded RNG) until `cap` items are taken."""
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    for it in items:
        groups[it["orig"]].append(it)
    queues = []
    for orig in sorted(groups):
        g = sorted(groups[orig], key=lambda it: it["key"])
        random.Random(f"{rng_seed}|{orig}").shuffle(g)
        queues.append(g)
    out: list[dict] = []
    depth = 0
    while len(out) < cap and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(out) < cap:
                out.append(q[depth])
        depth += 1
    return out


def load_dev_keys(path: str | None) -> set[str]:
    if not path:
        return set()
    keys = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                keys.add(key(json.loads(line)["text"]))
    return keys


def build_source(src: Source, m: Mirrors, seen: set[str], dev: set[str], seed: int) -> tuple[list[dict], dict]:
    if not m.has_commit(src.repo, src.commit):
        raise SystemExit(f"{src.name}: commit {src.commit} is not in the mirror of {src.repo}; fetch it again")
    stats = collections.Counter()
    by_key: dict[str, list[dict]] = {}
    for raw in src.read(src, m):
        text, orig = raw[0], str(raw[1])
        prior = [clean(p) for p in (raw[2] if len(raw) > 2 else []) if clean(p)]
        stats["read"] += 1
        label = src.label(orig)
        if label is None:
            stats["dropped_intent"] += 1
            continue
        text = clean(text)
        if len(text.split()) < MIN_WORDS or len(text) > MAX_CHARS:
            stats["length"] += 1
            continue
        if src.howto_simple and label == "tool_use" and HOWTO_Q.match(text):
            if HOWTO_LOOKUP.search(text):
                stats["dropped_intent"] += 1
                continue
            label, orig = "simple", orig + "+how-to"
            stats["howto_simple"] += 1
        it = {"text": text, "label": label, "source": src.name, "orig": orig, "train": src.train,
              "key": key(text)}
        if prior:
            it["prior_user"] = prior[-2:]
        by_key.setdefault(it["key"], []).append(it)

    items = []
    for k, copies in by_key.items():
        if len({c["label"] for c in copies}) > 1:
            stats["label_conflict"] += len(copies)
            continue
        stats["dup_within"] += len(copies) - 1
        if k in dev:
            stats["dup_dev"] += 1
            continue
        if k in seen:
            stats["dup_cross"] += 1
            continue
        items.append(copies[0])
    chosen = even_sample(items, src.cap, f"{seed}|{src.name}")
    stats["over_cap"] = len(items) - len(chosen)
    for it in chosen:
        seen.add(it["key"])
        stats[it["label"]] += 1
    stats["kept"] = len(chosen)
    stats["origs"] = len({it["orig"] for it in chosen})
    return chosen, stats


def write_sources_md(path: str, table: list[tuple[Source, collections.Counter]]) -> None:
    short = {"simple": "S", "reasoning": "R", "tool_use": "T"}
    with open(path, "w", encoding="utf-8") as f:
        f.write("| source | what it is | labels (S/R/T) | items | train | license | repository@commit |\n")
        f.write("|---|---|---|---:|---|---|---|\n")
        for src, st in table:
            labels = " ".join(f"{short[lb]} {st[lb]}" for lb in LABELS if st[lb])
            f.write(f"| `{src.name}` | {src.what} | {labels} | {st['kept']} | {'yes' if src.train else 'no'} "
                    f"| {src.license} | [{src.repo}](https://github.com/{src.repo})@`{src.commit[:12]}` |\n")


COLS = ("read", "dropped_intent", "length", "howto_simple", "label_conflict", "dup_within", "dup_dev", "dup_cross",
        "over_cap", "simple", "reasoning", "tool_use", "kept", "origs")
HEAD = ("read", "drop_int", "length", "how2simp", "conflict", "dup_in", "dup_dev", "dup_x", "over_cap",
        "simple", "reason", "tool", "kept", "origs")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirrors", required=True, help="folder holding OWNER+NAME/repo git mirrors")
    ap.add_argument("--out", required=True, help="JSONL file to write")
    ap.add_argument("--dev", help="dev.jsonl whose texts must not appear in the output")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="comma-separated source names (default: all)")
    ap.add_argument("--sources-md", help="also write the README's markdown table of sources to this file")
    args = ap.parse_args(argv)

    m = Mirrors(args.mirrors)
    dev = load_dev_keys(args.dev)
    only = set(args.only.split(",")) if args.only else None
    sources = [s for s in SOURCES if only is None or s.name in only]
    if only and len(sources) != len(only):
        raise SystemExit(f"unknown source(s): {sorted(only - {s.name for s in SOURCES})}")

    seen: set[str] = set()
    rows: list[dict] = []
    table = []
    for src in sources:
        chosen, stats = build_source(src, m, seen, dev, args.seed)
        rows.extend(sorted(chosen, key=lambda it: (it["label"], it["orig"], it["key"])))
        table.append((src, stats))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for it in rows:
            rec = {k: it[k] for k in ("text", "label", "source", "orig", "train")}
            if "prior_user" in it:
                rec["prior_user"] = it["prior_user"]
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    width = max(len(s.name) for s, _ in table)
    print(f"{'source':<{width}} " + " ".join(f"{h:>8}" for h in HEAD) + "  train")
    for src, st in table:
        print(f"{src.name:<{width}} " + " ".join(f"{st[c]:>8}" for c in COLS) + f"  {src.train}")
    if args.sources_md:
        write_sources_md(args.sources_md, table)
    totals = collections.Counter(it["label"] for it in rows)
    summary = {
        "items": len(rows),
        **{lb: totals[lb] for lb in LABELS},
        "sources": len(table),
        "train_items": sum(1 for it in rows if it["train"]),
        "eval_only_items": sum(1 for it in rows if not it["train"]),
        "dup_dev": sum(st["dup_dev"] for _, st in table),
        "seed": args.seed,
        "out": args.out,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
