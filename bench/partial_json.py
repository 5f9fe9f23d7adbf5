"""Streaming structured output: Triage's incremental parser against re-parsing the accumulated text per chunk.

Objects of about 1.5, 6, 24 and 96 KB (a structured answer: title, summary, steps, tags) are streamed in 4-character
chunks. For each size: total time and per-chunk p99 of

- triage: `IncrementalJSONParser.feed` per chunk (state kept between chunks, patches returned);
- triage+schema: the same, checking each completed field against the JSON schema and the whole object at its end;
- partial-json-parser: `partial_json_parser.loads(accumulated_text)` per chunk (the reference; Allow.ALL);
- jiter: `jiter.from_json(accumulated_text.encode(), partial_mode="trailing-strings")` per chunk.

Re-parsing is quadratic, so at 96 KB the baselines are timed on every k-th prefix only and their total is that
sample's sum times k (marked `~`); the ratios at 24 KB use full runs. Patch bytes are the patches as compact JSON
(UTF-8), per 4-character chunk as `feed` returns them, and coalesced over batches of chunks (what a UI stream that
flushes every few chunks would send), against the JSON text's own bytes.
The same text sent as plain `{"text": chunk}` deltas is the yardstick: no self-describing JSON-Patch event per
4-character chunk can cost less than that.

Wire bytes (issue 18) are what the UI stream really sends: the compact encoding of `structured/_wire`
(`WireEncoder`), one `patch` event per upstream read, here one read per chunk (`wire_vs_plain_deltas`: against the
plain deltas of the same chunks, goal <= 1.0) and one per 16 chunks (`wire_vs_json_coalesced16`: against the JSON
text, goal <= 2.0). Both count each event's `data` only, as the patch figures do; the `_sse` variants add the SSE
framing of every event (`event: patch\ndata: ` ... blank line: the same 20 bytes per event as for `delta`). The
parser's time with the encoder behind it is `triage_wire_ms_24kb`.

Prints a table, then as its last line one JSON object of figures (ratios measured within this run).
Run: .venv/bin/python bench/partial_json.py   (about 30-40 s)
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jiter
import partial_json_parser  # type: ignore[import-untyped]  # ships no py.typed

from triage.stream.structured import IncrementalJSONParser, Patch, SchemaValidator, WireEncoder, coalesce

CHUNK = 4
SIZES = {"1.5KB": 1_500, "6KB": 6_000, "24KB": 24_000, "96KB": 96_000}
# How many repetitions of the fast parser, and which prefixes the quadratic baselines time (every k-th).
REPEATS = 7
STRIDE = {"pjp": {"96KB": 16}, "jiter": {"96KB": 4}}
BATCHES = (4, 16, 64)

_WORDS = [
    *[
        "the",
        "a",
        "model",
        "route",
        "token",
        "stream",
        "latency",
        "answer",
        "request",
        "cheap",
        "strong",
        "classify",
        "policy",
        "fallback",
    ],
    *[
        "budget",
        "cache",
        "user",
        "prompt",
        "schema",
        "field",
        "patch",
        "parser",
        "chunk",
        "JSON",
        "value",
        "object",
        "array",
        "string",
        "number",
    ],
    *["gateway", "déjà-vu", "naïve", "café", "résumé", "😀", "über"],
]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["title", "summary", "steps", "tags", "confidence"],
    "additionalProperties": False,
    "$defs": {
        "Step": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "detail": {"type": "string"},
                "minutes": {"type": "integer", "minimum": 0},
                "optional": {"type": "boolean"},
                "refs": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["title", "detail", "minutes", "optional"],
            "additionalProperties": False,
        }
    },
}


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def make_document(target: int, seed: int = 5) -> str:
    """A structured answer whose JSON text is about `target` characters (as a model writes it: raw UTF-8)."""
    rng = random.Random(seed)
    doc: dict[str, Any] = {
        "title": _sentence(rng, 6),
        "summary": " ".join(_sentence(rng, 14) for _ in range(3)),
        "steps": [],
        "tags": [rng.choice(_WORDS) for _ in range(5)],
        "confidence": 0.87,
    }
    while len(json.dumps(doc, ensure_ascii=False)) < target:
        doc["steps"].append(
            {
                "title": _sentence(rng, 5),
                "detail": _sentence(rng, 20) + "\n" + _sentence(rng, 12) + ' See "notes".',
                "minutes": rng.randint(1, 90),
                "optional": rng.random() < 0.3,
                "refs": [f"https://example.org/{rng.randint(1, 999)}" for _ in range(rng.randint(0, 2))],
            }
        )
    return json.dumps(doc, ensure_ascii=False)


def _chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


def _p99(samples: list[int]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98] / 1e3  # ns -> us


def run_triage(chunks: list[str], schema: SchemaValidator | None) -> tuple[float, float, list[list[Patch]]]:
    """(total ms: best of REPEATS, p99 us per chunk over all repeats, the patches of each chunk)."""
    totals: list[float] = []
    samples: list[int] = []
    per_chunk: list[list[Patch]] = []
    clock = time.perf_counter_ns
    for _ in range(REPEATS):
        parser = IncrementalJSONParser(schema)
        feed = parser.feed
        start = clock()
        for chunk in chunks:
            feed(chunk)
        parser.finish()
        totals.append((clock() - start) / 1e6)
    for _ in range(REPEATS):
        parser = IncrementalJSONParser(schema)
        feed = parser.feed
        per_chunk = []
        for chunk in chunks:
            t0 = clock()
            patches = feed(chunk)
            samples.append(clock() - t0)
            per_chunk.append(patches)
        parser.finish()
    return min(totals), _p99(samples), per_chunk


def run_wire(chunks: list[str], batch: int) -> tuple[float, list[bytes]]:
    """Parse and encode as the UI stream does, one event per `batch` chunks: (best total ms, each event's data)."""
    totals: list[float] = []
    events: list[bytes] = []
    clock = time.perf_counter_ns
    for _ in range(REPEATS):
        parser, encoder = IncrementalJSONParser(), WireEncoder()
        feed, encode = parser.feed, encoder.encode
        events = []
        start = clock()
        for i in range(0, len(chunks), batch):
            patches = feed(chunks[i]) if batch == 1 else [p for c in chunks[i : i + batch] for p in feed(c)]
            data = encode(patches)
            if data:
                events.append(data)
        tail = encoder.encode(parser.finish())
        if tail:
            events.append(tail)
        totals.append((clock() - start) / 1e6)
    return min(totals), events


_SSE_FRAMING = len(b"event: patch\ndata: ") + len(b"\n\n")  # the same for `delta`


def run_reparse(chunks: list[str], parse: Callable[[str], object], stride: int) -> tuple[float, float, int]:
    """Re-parse the accumulated text at every `stride`-th chunk: (estimated total ms, p99 us, failures)."""
    samples: list[int] = []
    failures = 0
    clock = time.perf_counter_ns
    text = ""
    for k, chunk in enumerate(chunks):
        text += chunk
        if k % stride:
            continue
        t0 = clock()
        try:
            parse(text)
        except ValueError:  # a baseline that cannot complete some prefix (both raise ValueError subclasses)
            failures += 1
        samples.append(clock() - t0)
    return sum(samples) * stride / 1e6, _p99(samples), failures


def _pjp(text: str) -> object:
    return partial_json_parser.loads(text)


def _jiter(text: str) -> object:
    return jiter.from_json(text.encode(), partial_mode="trailing-strings")


def _size(patches: list[Patch]) -> int:
    return sum(len(json.dumps(p, ensure_ascii=False, separators=(",", ":")).encode()) for p in patches)


def delta_bytes(chunks: list[str]) -> int:
    """The same text sent as plain `delta` events ({"text": chunk}, compact JSON): the least any self-describing
    JSON event per chunk costs, the yardstick for the patches' per-chunk figure."""
    return sum(len(json.dumps({"text": c}, ensure_ascii=False, separators=(",", ":")).encode()) for c in chunks)


def wire_bytes(events: list[bytes], *, sse: bool = False) -> int:
    return sum(len(e) for e in events) + (_SSE_FRAMING * len(events) if sse else 0)


def patch_bytes(per_chunk: list[list[Patch]], batch: int) -> int:
    return sum(
        _size(coalesce(p for chunk in per_chunk[i : i + batch] for p in chunk)) for i in range(0, len(per_chunk), batch)
    )


def main() -> None:
    schema = SchemaValidator(SCHEMA)
    rows: list[dict[str, Any]] = []
    gc.collect()
    for name, target in SIZES.items():
        text = make_document(target)
        assert json.loads(text) is not None
        chunks = _chunks(text)
        total, p99, per_chunk = run_triage(chunks, None)
        schema_total, schema_p99, _ = run_triage(chunks, schema)
        pjp = run_reparse(chunks, _pjp, STRIDE["pjp"].get(name, 1))
        jit = run_reparse(chunks, _jiter, STRIDE["jiter"].get(name, 1))
        text_bytes = len(text.encode())
        wire_ms, wire1 = run_wire(chunks, 1)
        _, wire16 = run_wire(chunks, 16)
        deltas = delta_bytes(chunks)
        row: dict[str, Any] = {
            "size": name,
            "bytes": text_bytes,
            "chunks": len(chunks),
            "triage_ms": total,
            "triage_p99_us": p99,
            "schema_ms": schema_total,
            "schema_p99_us": schema_p99,
            "pjp_ms": pjp[0],
            "pjp_p99_us": pjp[1],
            "pjp_sampled": STRIDE["pjp"].get(name, 1) > 1,
            "pjp_failures": pjp[2],
            "jiter_ms": jit[0],
            "jiter_p99_us": jit[1],
            "jiter_sampled": STRIDE["jiter"].get(name, 1) > 1,
            "jiter_failures": jit[2],
            "patch_ratio_per_chunk": patch_bytes(per_chunk, 1) / text_bytes,
            "delta_ratio_per_chunk": delta_bytes(chunks) / text_bytes,
            "patch_ratio_whole": patch_bytes(per_chunk, len(per_chunk)) / text_bytes,
            "wire_ms": wire_ms,
            "wire_vs_plain_deltas": wire_bytes(wire1) / deltas,
            "wire_vs_plain_deltas_sse": wire_bytes(wire1, sse=True) / (deltas + _SSE_FRAMING * len(chunks)),
            "wire_vs_json_coalesced16": wire_bytes(wire16) / text_bytes,
            "wire_vs_json_coalesced16_sse": wire_bytes(wire16, sse=True) / text_bytes,
            "wire_vs_json_per_chunk": wire_bytes(wire1) / text_bytes,
        }
        for batch in BATCHES:
            row[f"patch_ratio_batch{batch}"] = patch_bytes(per_chunk, batch) / text_bytes
        rows.append(row)
        print(f"  measured {name}", file=sys.stderr, flush=True)

    def ms(value: float, sampled: bool = False) -> str:
        return ("~" if sampled else "") + f"{value:,.1f}"

    header = (
        f"{'size':>6} {'bytes':>7} {'chunks':>6} | {'triage ms':>9} {'p99 us':>6} | {'+schema ms':>10} {'p99 us':>6} |"
        f" {'pjp ms':>9} {'p99 us':>8} | {'jiter ms':>8} {'p99 us':>6} | {'x pjp':>6} {'x jiter':>7} |"
        f" patch bytes / JSON bytes: per chunk, batch " + ", ".join(map(str, BATCHES)) + ", whole"
        " | plain-text deltas per chunk | wire: per chunk vs deltas, coalesced 16 vs JSON"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratios = [r["patch_ratio_per_chunk"], *(r[f"patch_ratio_batch{b}"] for b in BATCHES), r["patch_ratio_whole"]]
        print(
            f"{r['size']:>6} {r['bytes']:>7} {r['chunks']:>6} | {ms(r['triage_ms']):>9} {r['triage_p99_us']:>6.1f} |"
            f" {ms(r['schema_ms']):>10} {r['schema_p99_us']:>6.1f} |"
            f" {ms(r['pjp_ms'], r['pjp_sampled']):>9} {r['pjp_p99_us']:>8.1f} |"
            f" {ms(r['jiter_ms'], r['jiter_sampled']):>8} {r['jiter_p99_us']:>6.1f} |"
            f" {r['pjp_ms'] / r['triage_ms']:>6.0f} {r['jiter_ms'] / r['triage_ms']:>7.1f} | "
            + "  ".join(f"{x:.2f}" for x in ratios)
            + f" | {r['delta_ratio_per_chunk']:.2f}"
            + f" | {r['wire_vs_plain_deltas']:.2f}  {r['wire_vs_json_coalesced16']:.2f}"
        )
    by = {r["size"]: r for r in rows}
    at24 = by["24KB"]
    flatness = by["96KB"]["triage_p99_us"] / by["1.5KB"]["triage_p99_us"]
    smallest_2x = next((b for b in BATCHES if at24[f"patch_ratio_batch{b}"] <= 2.0), None)
    summary = {
        "bench": "partial_json",
        "chunk_chars": CHUNK,
        "triage_ms_24kb": round(at24["triage_ms"], 2),
        "triage_schema_ms_24kb": round(at24["schema_ms"], 2),
        "pjp_ms_24kb": round(at24["pjp_ms"], 1),
        "jiter_ms_24kb": round(at24["jiter_ms"], 1),
        "speedup_vs_pjp_24kb": round(at24["pjp_ms"] / at24["triage_ms"], 1),
        "speedup_vs_jiter_24kb": round(at24["jiter_ms"] / at24["triage_ms"], 1),
        "p99_us": {r["size"]: round(r["triage_p99_us"], 2) for r in rows},
        "p99_ratio_96kb_vs_1_5kb": round(flatness, 2),
        "patch_ratio_per_chunk_24kb": round(at24["patch_ratio_per_chunk"], 2),
        "text_delta_ratio_per_chunk_24kb": round(at24["delta_ratio_per_chunk"], 2),
        **{f"patch_ratio_batch{b}_24kb": round(at24[f"patch_ratio_batch{b}"], 2) for b in BATCHES},
        "patch_ratio_whole_24kb": round(at24["patch_ratio_whole"], 2),
        "smallest_batch_within_2x_24kb": smallest_2x,
        "triage_wire_ms_24kb": round(at24["wire_ms"], 2),
        "wire_vs_plain_deltas": round(at24["wire_vs_plain_deltas"], 3),
        "wire_vs_plain_deltas_sse": round(at24["wire_vs_plain_deltas_sse"], 3),
        "wire_vs_json_coalesced16": round(at24["wire_vs_json_coalesced16"], 3),
        "wire_vs_json_coalesced16_sse": round(at24["wire_vs_json_coalesced16_sse"], 3),
        "wire_vs_json_per_chunk": round(at24["wire_vs_json_per_chunk"], 3),
        "wire_vs_plain_deltas_max_over_sizes": round(max(r["wire_vs_plain_deltas"] for r in rows), 3),
        "wire_vs_json_coalesced16_max_over_sizes": round(max(r["wire_vs_json_coalesced16"] for r in rows), 3),
        "goal_total_24kb_le_30ms": at24["triage_ms"] <= 30,
        "goal_wire_le_plain_deltas": at24["wire_vs_plain_deltas"] <= 1.0,
        "goal_wire_coalesced16_le_2x_json": at24["wire_vs_json_coalesced16"] <= 2.0,
        "goal_100x_pjp": at24["pjp_ms"] / at24["triage_ms"] >= 100,
        "goal_10x_jiter": at24["jiter_ms"] / at24["triage_ms"] >= 10,
        "goal_p99_flat_1_5x": flatness <= 1.5,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
