"""The PostgreSQL store's statements and row mapping: async functions of one asyncpg connection (see `_postgres`).
The schema is `_migrations`'s. Statistics aggregate as the SQLite store's do (`_sqlite_sql.stats`), in SQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from triage.learn._pg import Conn
from triage.learn._records import DecisionRecord
from triage.learn._store import BUCKET_SECONDS, Bucket, Correction, LabeledText, Stats, StatsBucket

__all__ = [
    "FIELDS",
    "corrections",
    "get_decision",
    "insert_correction",
    "insert_decisions",
    "labeled_texts",
    "page_decisions",
    "purge_text",
    "stats",
]

FIELDS = (
    "request_id", "created_at", "endpoint", "key_id", "category", "confidence", "scores", "classifier", "model",
    "reason", "speculation", "prompt_tokens", "completion_tokens", "cost_usd", "baseline_cost_usd",
    "wasted_prompt_tokens", "wasted_completion_tokens", "wasted_cost_usd", "classify_ms", "ttft_ms", "total_ms",
    "status", "text", "layers",
)
_COLUMNS = ", ".join(FIELDS)
# ON CONFLICT DO NOTHING: a batch retried after a lost acknowledgement (the database restarted between its commit
# and the reply) is written once, not twice and not refused.
_INSERT = (f"INSERT INTO triage_decisions ({_COLUMNS}) VALUES ({', '.join(f'${i + 1}' for i in range(len(FIELDS)))})"
           " ON CONFLICT (request_id) DO NOTHING")
_LATEST = "c.id = (SELECT MAX(id) FROM triage_corrections WHERE request_id = c.request_id)"
_CORRECTION = "id, request_id, category, router_category, note, key_id, created_at"


def _row(record: DecisionRecord) -> tuple[Any, ...]:
    r = record
    return (
        r.request_id, r.created_at, r.endpoint, r.key_id, r.category, r.confidence, json.dumps(dict(r.scores)),
        r.classifier, r.model, r.reason, r.speculation, r.prompt_tokens, r.completion_tokens, r.cost_usd,
        r.baseline_cost_usd, r.wasted_prompt_tokens, r.wasted_completion_tokens, r.wasted_cost_usd, r.classify_ms,
        r.ttft_ms, r.total_ms, r.status, r.text, json.dumps(dict(r.layers)),
    )


def _record(row: asyncpg.Record) -> DecisionRecord:
    data = {name: row[name] for name in FIELDS}
    data["scores"] = json.loads(data["scores"])
    data["layers"] = json.loads(data["layers"])
    return DecisionRecord(**data)


async def insert_decisions(conn: Conn, records: Sequence[DecisionRecord]) -> None:
    # One transaction: asyncpg runs executemany atomically (all rows or none) without BEGIN/COMMIT round trips.
    await conn.executemany(_INSERT, [_row(r) for r in records])


async def insert_correction(
    conn: Conn, request_id: str, category: str, note: str | None, key_id: str | None, now: float
) -> Correction | None:
    """Insert (and commit) a correction; None, with nothing written, when no decision has `request_id`."""
    row = await conn.fetchrow(
        "INSERT INTO triage_corrections (request_id, category, router_category, note, key_id, created_at)"
        " SELECT request_id, $2, category, $3, $4, $5 FROM triage_decisions WHERE request_id = $1"
        " RETURNING id, router_category",
        request_id, category, note, key_id, now,
    )
    if row is None:
        return None
    return Correction(row["id"], request_id, category, row["router_category"], note, key_id, now)


async def purge_text(conn: Conn, cutoff: float) -> int:
    async with conn.transaction():
        status = await conn.execute(
            "UPDATE triage_decisions SET text = NULL WHERE created_at < $1 AND text IS NOT NULL", cutoff
        )
        await conn.execute(
            "UPDATE triage_corrections SET note = NULL WHERE created_at < $1 AND note IS NOT NULL", cutoff
        )
    return int(status.rsplit(" ", 1)[-1])  # "UPDATE <n>"


async def get_decision(conn: Conn, request_id: str) -> DecisionRecord | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM triage_decisions WHERE request_id = $1", request_id)
    return None if row is None else _record(row)


async def page_decisions(
    conn: Conn, after: int, since: float | None, until: float | None, limit: int
) -> list[tuple[int, DecisionRecord]]:
    rows = await conn.fetch(
        f"SELECT seq, {_COLUMNS} FROM triage_decisions WHERE seq > $1 AND created_at >= $2 AND created_at < $3"
        " ORDER BY seq LIMIT $4",
        after, float("-inf") if since is None else since, float("inf") if until is None else until, limit,
    )
    return [(row["seq"], _record(row)) for row in rows]


async def corrections(conn: Conn, since: float | None) -> list[Correction]:
    rows = await conn.fetch(
        f"SELECT {_CORRECTION} FROM triage_corrections WHERE created_at >= $1 ORDER BY id",
        float("-inf") if since is None else since,
    )
    return [Correction(*row) for row in rows]


async def labeled_texts(conn: Conn) -> list[LabeledText]:
    rows = await conn.fetch(
        "SELECT d.request_id, d.text, c.category, d.category, c.created_at FROM triage_corrections c"
        f" JOIN triage_decisions d ON d.request_id = c.request_id WHERE {_LATEST} AND d.text IS NOT NULL"
        " ORDER BY c.id"
    )
    return [LabeledText(*row) for row in rows]


async def stats(conn: Conn, bucket: Bucket, since: float, until: float) -> Stats:
    size = BUCKET_SECONDS[bucket]
    index = f"floor(d.created_at / {size})::bigint"
    buckets: dict[int, StatsBucket] = {}

    def at(i: int) -> StatsBucket:
        return buckets.setdefault(i, StatsBucket(float(i * size)))

    window = "d.created_at >= $1 AND d.created_at < $2"
    # One read-only snapshot for the three queries, so their counts agree while other instances write.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for row in await conn.fetch(
            f"SELECT {index}, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd),"
            " SUM(baseline_cost_usd), SUM(wasted_prompt_tokens), SUM(wasted_completion_tokens), SUM(wasted_cost_usd)"
            f" FROM triage_decisions d WHERE {window} GROUP BY 1",
            since, until,
        ):
            i, n, pt, ct, cost, base, wpt, wct, wcost = row
            b = at(i)
            b.requests, b.prompt_tokens, b.completion_tokens = n, int(pt), int(ct)
            b.cost_usd, b.baseline_cost_usd = cost, base
            b.wasted_prompt_tokens, b.wasted_completion_tokens, b.wasted_cost_usd = int(wpt), int(wct), wcost
        dimensions = (
            ("categories", "COALESCE(category, 'forced')"),
            ("models", "COALESCE(model, 'none')"),
            ("statuses", "status"),
            ("speculation", "speculation"),
        )
        union = " UNION ALL ".join(
            f"SELECT {n} AS dim, {index} AS i, {column} AS key, COUNT(*) AS n FROM triage_decisions d"
            f" WHERE {window} GROUP BY 2, 3"
            for n, (_, column) in enumerate(dimensions)
        )
        for dim, i, key, n in await conn.fetch(union, since, until):
            getattr(at(i), dimensions[dim][0])[key] = n
        for i, n, judged, agreed in await conn.fetch(
            f"SELECT {index}, COUNT(*), COUNT(d.category), COUNT(*) FILTER (WHERE c.category = d.category)"
            " FROM triage_corrections c JOIN triage_decisions d ON d.request_id = c.request_id"
            f" WHERE {_LATEST} AND {window} GROUP BY 1",
            since, until,
        ):
            b = at(i)
            b.corrections, b.judged, b.agreed = n, judged, agreed
    return Stats(bucket, since, until, [buckets[i] for i in sorted(buckets)])
