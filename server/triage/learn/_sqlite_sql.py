"""The SQLite store's schema and statements: plain synchronous functions of a connection, run on the store's
threads (see `_sqlite`), never on the event loop."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from triage.learn._records import DecisionRecord
from triage.learn._store import BUCKET_SECONDS, Bucket, Correction, LabeledText, Stats, StatsBucket

__all__ = [
    "connect",
    "corrections",
    "create_schema",
    "get_decision",
    "insert_correction",
    "insert_decisions",
    "labeled_texts",
    "page_decisions",
    "purge_text",
    "stats",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    endpoint TEXT NOT NULL,
    key_id TEXT,
    category TEXT,
    confidence REAL,
    scores TEXT NOT NULL,
    classifier TEXT,
    model TEXT,
    reason TEXT NOT NULL,
    speculation TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    baseline_cost_usd REAL NOT NULL,
    wasted_prompt_tokens INTEGER NOT NULL,
    wasted_completion_tokens INTEGER NOT NULL,
    wasted_cost_usd REAL NOT NULL,
    classify_ms REAL,
    ttft_ms REAL,
    total_ms REAL NOT NULL,
    status TEXT NOT NULL,
    text TEXT,
    layers TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_created_at ON decisions (created_at);
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    category TEXT NOT NULL,
    router_category TEXT,
    note TEXT,
    key_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS corrections_request_id ON corrections (request_id);
"""

_FIELDS = (
    "request_id", "created_at", "endpoint", "key_id", "category", "confidence", "scores", "classifier", "model",
    "reason", "speculation", "prompt_tokens", "completion_tokens", "cost_usd", "baseline_cost_usd",
    "wasted_prompt_tokens", "wasted_completion_tokens", "wasted_cost_usd", "classify_ms", "ttft_ms", "total_ms",
    "status", "text", "layers",
)
_COLUMNS = ", ".join(_FIELDS)
_INSERT = f"INSERT OR IGNORE INTO decisions ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})"
# The latest correction of each request is the one that counts (a reviewer may change their mind).
_LATEST = "c.id = (SELECT MAX(id) FROM corrections WHERE request_id = c.request_id)"


def connect(path: str) -> sqlite3.Connection:
    # Autocommit mode: transactions are opened explicitly, so each one's extent is visible in the code.
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the store was written by a newer Triage (schema {version}; this one knows {SCHEMA_VERSION})"
        )
    conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")


def _row(record: DecisionRecord) -> tuple[Any, ...]:
    values = []
    for name in _FIELDS:
        value = getattr(record, name)
        values.append(json.dumps(dict(value)) if name in ("scores", "layers") else value)
    return tuple(values)


def _record(row: Sequence[Any]) -> DecisionRecord:
    data = dict(zip(_FIELDS, row, strict=True))
    data["scores"] = json.loads(data["scores"])
    data["layers"] = json.loads(data["layers"])
    return DecisionRecord(**data)


def insert_decisions(conn: sqlite3.Connection, records: Sequence[DecisionRecord]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_INSERT, [_row(r) for r in records])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert_correction(
    conn: sqlite3.Connection, request_id: str, category: str, note: str | None, key_id: str | None, now: float
) -> Correction | None:
    """Insert and commit a correction; None (and nothing written) when the decision is unknown."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT category FROM decisions WHERE request_id = ?", (request_id,)).fetchone()
        if row is None:
            conn.execute("ROLLBACK")
            return None
        cursor = conn.execute(
            "INSERT INTO corrections (request_id, category, router_category, note, key_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (request_id, category, row[0], note, key_id, now),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    assert cursor.lastrowid is not None
    return Correction(cursor.lastrowid, request_id, category, row[0], note, key_id, now)


def purge_text(conn: sqlite3.Connection, cutoff: float) -> int:
    """Clear request text and reviewer notes written before `cutoff`; rows and their numbers stay."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cleared = conn.execute(
            "UPDATE decisions SET text = NULL WHERE created_at < ? AND text IS NOT NULL", (cutoff,)
        ).rowcount
        conn.execute("UPDATE corrections SET note = NULL WHERE created_at < ? AND note IS NOT NULL", (cutoff,))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return cleared


def get_decision(conn: sqlite3.Connection, request_id: str) -> DecisionRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE request_id = ?", (request_id,)).fetchone()
    return None if row is None else _record(row)


def page_decisions(
    conn: sqlite3.Connection, after: int, since: float | None, until: float | None, limit: int
) -> list[tuple[int, DecisionRecord]]:
    rows = conn.execute(
        f"SELECT rowid, {_COLUMNS} FROM decisions WHERE rowid > ? AND created_at >= ? AND created_at < ?"
        " ORDER BY rowid LIMIT ?",
        (after, float("-inf") if since is None else since, float("inf") if until is None else until, limit),
    ).fetchall()
    return [(row[0], _record(row[1:])) for row in rows]


def corrections(conn: sqlite3.Connection, since: float | None) -> list[Correction]:
    rows = conn.execute(
        "SELECT id, request_id, category, router_category, note, key_id, created_at FROM corrections"
        " WHERE created_at >= ? ORDER BY id",
        (float("-inf") if since is None else since,),
    ).fetchall()
    return [Correction(*row) for row in rows]


def labeled_texts(conn: sqlite3.Connection) -> list[LabeledText]:
    rows = conn.execute(
        "SELECT d.request_id, d.text, c.category, d.category, c.created_at FROM corrections c"
        f" JOIN decisions d ON d.request_id = c.request_id WHERE {_LATEST} AND d.text IS NOT NULL ORDER BY c.id"
    ).fetchall()
    return [LabeledText(*row) for row in rows]


def stats(conn: sqlite3.Connection, bucket: Bucket, since: float, until: float) -> Stats:
    size = BUCKET_SECONDS[bucket]
    window = (since, until)
    # Integer division of a positive time floors it: the bucket index. Days are UTC days.
    index = f"CAST(d.created_at / {size} AS INTEGER)"
    buckets: dict[int, StatsBucket] = {}

    def at(i: int) -> StatsBucket:
        return buckets.setdefault(i, StatsBucket(float(i * size)))

    for i, n, pt, ct, cost, base, wpt, wct, wcost in conn.execute(
        f"SELECT {index}, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd),"
        " SUM(baseline_cost_usd), SUM(wasted_prompt_tokens), SUM(wasted_completion_tokens), SUM(wasted_cost_usd)"
        " FROM decisions d WHERE d.created_at >= ? AND d.created_at < ? GROUP BY 1",
        window,
    ):
        b = at(i)
        b.requests, b.prompt_tokens, b.completion_tokens = n, pt, ct
        b.cost_usd, b.baseline_cost_usd = cost, base
        b.wasted_prompt_tokens, b.wasted_completion_tokens, b.wasted_cost_usd = wpt, wct, wcost
    for dimension, column in (
        ("categories", "COALESCE(category, 'forced')"),
        ("models", "COALESCE(model, 'none')"),
        ("statuses", "status"),
        ("speculation", "speculation"),
    ):
        for i, key, n in conn.execute(
            f"SELECT {index}, {column}, COUNT(*) FROM decisions d WHERE d.created_at >= ? AND d.created_at < ?"
            " GROUP BY 1, 2",
            window,
        ):
            getattr(at(i), dimension)[key] = n
    for i, n, judged, agreed in conn.execute(
        f"SELECT {index}, COUNT(*), COUNT(d.category), COALESCE(SUM(c.category = d.category), 0)"
        f" FROM corrections c JOIN decisions d ON d.request_id = c.request_id"
        f" WHERE {_LATEST} AND d.created_at >= ? AND d.created_at < ? GROUP BY 1",
        window,
    ):
        b = at(i)
        b.corrections, b.judged, b.agreed = n, judged, agreed
    return Stats(bucket, since, until, [buckets[i] for i in sorted(buckets)])
