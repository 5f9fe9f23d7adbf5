"""asyncpg or psycopg 3 for the PostgreSQL store (issue 17): the same work on one real server, CPU per record.

What the store does on the serving process's event loop: write decision records in batches (the hot part: one per
request), look one up by request id (a correction), and commit a correction. Each arm runs the same rounds,
interleaved, on a fresh table; reported is this process's CPU time (the event loop and every driver thread) and
wall time, per record or per call. Last line: one JSON object.

    python bench/pg_driver.py [--rounds 6] [--batch 512]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psycopg_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import PASSWORD, running_postgres

TABLE = """CREATE TABLE d (request_id TEXT PRIMARY KEY, created_at DOUBLE PRECISION, endpoint TEXT, key_id TEXT,
 category TEXT, confidence DOUBLE PRECISION, scores JSONB, classifier TEXT, model TEXT, reason TEXT, speculation TEXT,
 prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd DOUBLE PRECISION, baseline_cost_usd DOUBLE PRECISION,
 wasted_prompt_tokens INTEGER, wasted_completion_tokens INTEGER, wasted_cost_usd DOUBLE PRECISION,
 classify_ms DOUBLE PRECISION, ttft_ms DOUBLE PRECISION, total_ms DOUBLE PRECISION, status TEXT, text TEXT,
 layers JSONB)"""
COLS = 24
INSERT_DOLLAR = f"INSERT INTO d VALUES ({', '.join(f'${i + 1}' for i in range(COLS))}) ON CONFLICT DO NOTHING"
INSERT_PCT = f"INSERT INTO d VALUES ({', '.join(['%s'] * COLS)}) ON CONFLICT DO NOTHING"


def rows(n: int) -> list[tuple[Any, ...]]:
    now = time.time()
    scores = json.dumps({"simple": 0.7, "reasoning": 0.2, "tool_use": 0.1})
    return [
        (f"req_{uuid.uuid4().hex}", now, "chat.completions", "k1", "simple", 0.7, scores, "local", "cheap",
         "confident", "hit", 120, 40, 0.0001, 0.001, 0, 0, 0.0, 0.3, 25.0, 210.0, "ok",
         "what is the capital of France? " * 3, json.dumps({"rules": 0.01, "local": 0.3}))
        for _ in range(n)
    ]


async def measure(fn: Callable[[], Awaitable[None]], n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await fn()
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()
    with running_postgres(fsync=True) as pg:
        url = pg.create_database("bench")
        apool = await asyncpg.create_pool(url, password=PASSWORD, min_size=2, max_size=4)
        ppool = psycopg_pool.AsyncConnectionPool(url, kwargs={"password": PASSWORD}, min_size=2, max_size=4,
                                                 open=False)
        await ppool.open()
        async with apool.acquire() as c:
            await c.execute(TABLE)
        results: dict[str, list[tuple[float, float]]] = {}

        def note(name: str, value: tuple[float, float]) -> None:
            results.setdefault(name, []).append(value)

        for _ in range(args.rounds):
            batch = rows(args.batch)

            async def a_many(batch: list[tuple[Any, ...]] = batch) -> None:
                async with apool.acquire() as c, c.transaction():
                    await c.executemany(INSERT_DOLLAR, batch)

            async def a_copy(batch: list[tuple[Any, ...]] = batch) -> None:
                fresh = [(f"c{r[0]}", *r[1:]) for r in batch]
                async with apool.acquire() as c:
                    await c.copy_records_to_table("d", records=fresh)

            async def p_many(batch: list[tuple[Any, ...]] = batch) -> None:
                fresh = [(f"p{r[0]}", *r[1:]) for r in batch]
                async with ppool.connection() as c, c.cursor() as cur:
                    await cur.executemany(INSERT_PCT, fresh)

            async def p_copy(batch: list[tuple[Any, ...]] = batch) -> None:
                fresh = [(f"q{r[0]}", *r[1:]) for r in batch]
                async with ppool.connection() as c, c.cursor() as cur, cur.copy("COPY d FROM STDIN") as copy:
                    for r in fresh:
                        await copy.write_row(r)

            note("asyncpg executemany", await measure(a_many, len(batch)))
            note("asyncpg copy", await measure(a_copy, len(batch)))
            note("psycopg executemany", await measure(p_many, len(batch)))
            note("psycopg copy", await measure(p_copy, len(batch)))
            ids = [r[0] for r in batch[: args.lookups]]

            async def a_get(ids: list[str] = ids) -> None:
                async with apool.acquire() as c:
                    for i in ids:
                        await c.fetchrow("SELECT * FROM d WHERE request_id = $1", i)

            async def p_get(ids: list[str] = ids) -> None:
                for i in ids:
                    async with ppool.connection() as c, c.cursor() as cur:
                        await cur.execute("SELECT * FROM d WHERE request_id = %s", (i,))
                        await cur.fetchone()

            async def a_get_pool(ids: list[str] = ids) -> None:
                for i in ids:
                    await apool.fetchrow("SELECT * FROM d WHERE request_id = $1", i)

            note("asyncpg lookup (pool per call)", await measure(a_get_pool, len(ids)))
            note("asyncpg lookup (one conn)", await measure(a_get, len(ids)))
            note("psycopg lookup (pool per call)", await measure(p_get, len(ids)))
        await apool.close()
        await ppool.close()
    print(f"{'arm':34} {'CPU us/rec':>11} {'wall us/rec':>12}")
    summary: dict[str, float] = {}
    for name, values in results.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"{name:34} {cpu:11.1f} {wall:12.1f}")
        summary[name.replace(" ", "_").replace("(", "").replace(")", "") + "_cpu_us"] = round(cpu, 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
