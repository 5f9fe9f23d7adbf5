"""The SQLite store on a real file: batched writes under concurrent load, drops when full, corrections that find
queued records, retention."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from triage import TriageConfig
from triage._config import StoreConfig
from triage._exceptions import NotFound
from triage.cli._export import run as run_export
from triage.learn import DecisionRecord, SQLiteStore, Store, export, open_store

DAY = 86400.0


def make_record(request_id: str, *, created_at: float | None = None, **fields: Any) -> DecisionRecord:
    """A complete record with every field set to something distinguishable."""
    values: dict[str, Any] = {
        "request_id": request_id,
        "created_at": time.time() if created_at is None else created_at,
        "endpoint": "chat.completions",
        "key_id": "client-1",
        "category": "simple",
        "confidence": 0.83,
        "scores": {"simple": 0.83, "reasoning": 0.12, "tool_use": 0.05},
        "classifier": "local",
        "model": "cheap",
        "reason": "confident",
        "speculation": "hit",
        "prompt_tokens": 120,
        "completion_tokens": 40,
        "cost_usd": 0.000042,
        "baseline_cost_usd": 0.0007,
        "wasted_prompt_tokens": 0,
        "wasted_completion_tokens": 0,
        "wasted_cost_usd": 0.0,
        "classify_ms": 0.9,
        "ttft_ms": 35.5,
        "total_ms": 410.0,
        "status": "ok",
        "text": f"what is the capital of France? ({request_id})",
        "layers": {"rules": 0.01, "local": 0.8},
    }
    values.update(fields)
    return DecisionRecord(**values)


def store_config(tmp_path: Path, **overrides: Any) -> StoreConfig:
    return StoreConfig(path=str(tmp_path / "triage.db"), **overrides)


def raw_rows(path: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_sqlite_store_is_a_store(tmp_path: Path) -> None:
    assert isinstance(SQLiteStore(store_config(tmp_path)), Store)


async def test_concurrent_submits_are_all_written(tmp_path: Path) -> None:
    config = store_config(tmp_path)
    store = SQLiteStore(config)
    await store.start()

    async def client(n: int) -> None:
        for i in range(50):
            store.submit(make_record(f"req_{n}_{i}"))
            if i % 7 == 0:
                await asyncio.sleep(0)  # interleave with the writer and the other clients

    await asyncio.gather(*(client(n) for n in range(40)))
    await store.stop()
    assert store.dropped == 0
    assert raw_rows(config.path, "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM decisions") == [(2000, 2000)]
    assert raw_rows(config.path, "PRAGMA journal_mode") == [("wal",)]


async def test_submit_never_blocks_and_counts_drops_when_full(tmp_path: Path) -> None:
    store = SQLiteStore(store_config(tmp_path, queue_size=10))
    # Not started: nothing drains the queue, so the eleventh record onwards is dropped, without waiting.
    started = time.perf_counter()
    for i in range(25):
        store.submit(make_record(f"req_{i}"))
    assert time.perf_counter() - started < 0.5
    assert store.dropped == 15
    await store.start()
    await store.stop()
    store.submit(make_record("req_after_stop"))  # never raises, even after stop
    assert store.dropped == 16
    async with open_store(store.config) as reopened:
        assert len([r async for r in reopened.iter_decisions()]) == 10


async def test_records_round_trip_with_every_field(tmp_path: Path) -> None:
    record = make_record("req_full", category=None, confidence=None, classifier=None, reason="forced",
                         speculation="miss", wasted_prompt_tokens=9, wasted_completion_tokens=3,
                         wasted_cost_usd=1.5e-6, classify_ms=None, ttft_ms=None, status="cancelled")
    async with open_store(store_config(tmp_path)) as store:
        store.submit(record)
        assert await store.get_decision("req_full") == record  # still queued: served from memory
        await store.flush()
        assert await store.get_decision("req_full") == record  # from the file
        assert await store.get_decision("req_nope") is None
    async with open_store(store.config) as store:
        assert [r async for r in store.iter_decisions()] == [record]


async def test_text_is_not_stored_under_text_none(tmp_path: Path) -> None:
    config = store_config(tmp_path, text="none")
    async with open_store(config) as store:
        store.submit(make_record("req_1", text="a secret prompt"))
        await store.add_correction("req_1", "reasoning")
        assert await store.labeled_texts() == []
    assert raw_rows(config.path, "SELECT text FROM decisions") == [(None,)]
    assert b"a secret prompt" not in await asyncio.to_thread(Path(config.path).read_bytes)


async def test_correction_finds_a_record_still_in_the_queue(tmp_path: Path) -> None:
    async with open_store(store_config(tmp_path)) as store:
        store.submit(make_record("req_q", category="simple"))
        assert store.queued == 1
        correction = await store.add_correction("req_q", "reasoning", note="asks for a proof", key_id="rev")
        assert (correction.router_category, correction.category, correction.key_id) == ("simple", "reasoning", "rev")
        with pytest.raises(NotFound):
            await store.add_correction("req_unknown", "simple")
        assert await store.corrections() == [correction]
        # A second opinion replaces the first for training.
        await store.add_correction("req_q", "tool_use")
        [example] = await store.labeled_texts()
        assert (example.request_id, example.category) == ("req_q", "tool_use")


async def test_retention_clears_old_text_at_start_and_periodically(tmp_path: Path) -> None:
    now = [time.time()]
    config = store_config(tmp_path, retention_days=2)
    async with open_store(config) as store:
        store.submit(make_record("req_old", created_at=now[0] - 3 * DAY))
        store.submit(make_record("req_new", created_at=now[0] - 1 * DAY))
        await store.flush()
        await store.add_correction("req_old", "reasoning", note="old note")

    store = SQLiteStore(config, clock=lambda: now[0], purge_interval=0.05)
    await store.start()  # the purge at start clears req_old's text, keeps req_new's
    rows = dict(raw_rows(config.path, "SELECT request_id, text FROM decisions"))
    assert rows["req_old"] is None and rows["req_new"] is not None
    # The correction was written (by the real clock) long after `now`: its note is recent and stays for now.
    assert raw_rows(config.path, "SELECT note FROM corrections") == [("old note",)]

    now[0] += 2 * DAY + 60  # req_new is now three days old, the note two: the periodic purge clears both
    for _ in range(100):
        if dict(raw_rows(config.path, "SELECT request_id, text FROM decisions"))["req_new"] is None:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the periodic purge did not run")
    assert raw_rows(config.path, "SELECT note FROM corrections") == [(None,)]
    # Rows and their numbers stay: statistics keep their history.
    assert raw_rows(config.path, "SELECT COUNT(*), SUM(prompt_tokens) FROM decisions") == [(2, 240)]
    assert await store.purge(now=now[0] + 1000 * DAY) == 0  # text already gone
    await store.stop()


async def test_stop_writes_everything_queued(tmp_path: Path) -> None:
    config = store_config(tmp_path)
    store = SQLiteStore(config, batch_size=16)
    await store.start()
    for i in range(1000):
        store.submit(make_record(f"req_{i}"))
    await store.stop()
    assert raw_rows(config.path, "SELECT COUNT(*) FROM decisions") == [(1000,)]


async def test_export_writes_decisions_then_corrections(tmp_path: Path) -> None:
    config = TriageConfig.model_validate({
        "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "p", "upstream_id": "m"}},
        "routes": {"simple": {"models": ["m"]}, "reasoning": {"models": ["m"]}},
        "store": {"path": str(tmp_path / "triage.db")},
    })
    base = time.time() - 100
    async with open_store(config.store) as store:
        for i in range(3):
            store.submit(make_record(f"req_{i}", created_at=base + i))
        await store.add_correction("req_1", "reasoning", note="n")
    out = io.StringIO()
    assert await export(config, out) == (3, 1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["type"], x["request_id"]) for x in lines] == [
        ("decision", "req_0"), ("decision", "req_1"), ("decision", "req_2"), ("correction", "req_1")]
    exported = DecisionRecord(**{k: v for k, v in lines[2].items() if k != "type"})
    assert exported == make_record("req_2", created_at=base + 2)
    assert lines[3]["category"] == "reasoning" and lines[3]["note"] == "n"
    # The command: a complete file, or none.
    config_file = tmp_path / "triage.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    out_file = tmp_path / "export.jsonl"
    args = argparse.Namespace(out=str(out_file), config=str(config_file), since=str(base + 1.5))
    assert await asyncio.to_thread(run_export, args) == 0
    assert [json.loads(line)["request_id"] for line in out_file.read_text().splitlines()] == ["req_2", "req_1"]
