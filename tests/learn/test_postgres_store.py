"""The PostgreSQL store on a real server (tests/servers.py): the store contract as SQLite keeps it, the same
statistics from the same records, migrations (fresh, up to date, many at once), an outage with decisions buffered
and written after, and start-up errors that name the setting and never the password."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from servers import PASSWORD, PASSWORD_ENV, Postgres, running_postgres, store_config
from test_store import make_record

from triage._config import StoreConfig
from triage._exceptions import ConfigError, NotFound, StoreUnavailable
from triage.learn import SQLiteStore, Store, export, open_store, upgrade_schema
from triage.learn._migrations import MIGRATIONS, applied_versions, migrate
from triage.learn._postgres import PostgresStore

HOUR = 3600.0


def pg_config(url: str, **overrides: Any) -> StoreConfig:
    return StoreConfig(**store_config(url, **overrides))  # type: ignore[arg-type]


async def raw(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, password=PASSWORD)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def test_postgres_store_is_a_store(pg_url: str) -> None:
    assert isinstance(PostgresStore(pg_config(pg_url)), Store)


async def test_records_round_trip_with_every_field(pg_url: str) -> None:
    record = make_record("req_pg_1", category=None, confidence=None, classifier=None, reason="forced")
    async with open_store(pg_config(pg_url)) as store:
        assert isinstance(store, PostgresStore)
        store.submit(record)
        assert await store.get_decision("req_pg_1") == record  # still queued: served from memory
        await store.flush()
        assert store._queue.pending("req_pg_1") is None  # written: no longer held in memory
        assert await store.get_decision("req_pg_1") == record  # from the database
        assert await store.get_decision("req_unknown") is None


async def test_concurrent_submits_are_all_written_in_batches(pg_url: str) -> None:
    config = pg_config(pg_url, batch_size=64)

    async def burst(store: Store, worker: int) -> None:
        for i in range(250):
            store.submit(make_record(f"req_{worker}_{i}"))
            if i % 25 == 0:
                await asyncio.sleep(0)

    async with open_store(config) as store:
        await asyncio.gather(*(burst(store, w) for w in range(8)))
        await store.flush()
        assert store.dropped == 0 and store.queued == 0
    rows = await raw(pg_url, "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM triage_decisions")
    assert tuple(rows[0]) == (2000, 2000)


async def test_correction_finds_a_queued_record_and_refuses_an_unknown_one(pg_url: str) -> None:
    async with open_store(pg_config(pg_url)) as store:
        store.submit(make_record("req_q"))
        correction = await store.add_correction("req_q", "reasoning", note="needs steps", key_id="reviewer-1")
        assert (correction.router_category, correction.category) == ("simple", "reasoning")
        with pytest.raises(NotFound):
            await store.add_correction("req_missing", "simple")
        assert [c.id for c in await store.corrections()] == [correction.id]
        [labeled] = await store.labeled_texts()
        assert (labeled.request_id, labeled.category) == ("req_q", "reasoning")


async def test_same_statistics_as_sqlite_from_the_same_records(pg_url: str, tmp_path: Path) -> None:
    start = 1_700_000_000.0 - 1_700_000_000.0 % HOUR
    records = [
        make_record(f"req_{i}", created_at=start + i * 700, category=("simple", "reasoning", None)[i % 3],
                    model=("cheap", "strong", None)[i % 3], status=("ok", "ok", "upstream_error")[i % 3],
                    speculation=("hit", "miss", "off")[i % 3], prompt_tokens=10 + i, cost_usd=0.001 * i)
        for i in range(30)
    ]
    reports = []
    for config in (StoreConfig(path=str(tmp_path / "t.db")), pg_config(pg_url)):
        async with open_store(config) as store:
            for r in records:
                store.submit(r)
            await store.flush()
            await store.add_correction("req_0", "reasoning")
            await store.add_correction("req_1", "reasoning")  # agrees
            await store.add_correction("req_1", "simple")  # a change of mind: only the latest counts
            await store.add_correction("req_2", "simple")  # a forced request: not judged
            report = await store.stats(bucket="hour", since=start, until=start + 10 * HOUR)
            reports.append(report.to_dict())
    assert reports[0] == reports[1]
    assert reports[0]["totals"]["requests"] == 30  # type: ignore[index]


async def test_export_reads_the_shared_database(pg_url: str) -> None:
    from harness import gateway_config

    config = gateway_config("http://127.0.0.1:9", store=store_config(pg_url))
    async with open_store(config.store) as store:
        store.submit(make_record("req_e1"))
        store.submit(make_record("req_e2"))
        await store.flush()
        await store.add_correction("req_e2", "reasoning")
    out = io.StringIO()
    assert await export(config, out) == (2, 1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(row["type"], row["request_id"]) for row in lines] == [
        ("decision", "req_e1"), ("decision", "req_e2"), ("correction", "req_e2")
    ]


# -- migrations -------------------------------------------------------------------------------------------------


async def test_migrations_on_a_fresh_then_an_up_to_date_database(pg_url: str) -> None:
    config = pg_config(pg_url)
    assert await upgrade_schema(config) == ([m.version for m in MIGRATIONS], MIGRATIONS[-1].version)
    assert await upgrade_schema(config) == ([], MIGRATIONS[-1].version)
    rows = await raw(pg_url, "SELECT version, name FROM triage_schema_migrations")
    assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]


async def test_many_instances_migrating_at_once_apply_each_migration_once(pg_url: str) -> None:
    conns = [await asyncpg.connect(pg_url, password=PASSWORD) for _ in range(6)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(v for a in applied for v in a) == [m.version for m in MIGRATIONS]  # each exactly once
        assert await applied_versions(conns[0]) == [m.version for m in MIGRATIONS]
    finally:
        for c in conns:
            await c.close()


def test_two_processes_upgrading_at_once(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "triage.yaml"
    config = yaml.safe_load((Path(__file__).parents[2] / "server/triage/data/triage.default.yaml").read_text())
    config["store"] = store_config(pg_url)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    procs = [triage_cli("db", "upgrade", "--config", str(path)) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(out for out, _ in outs)
    assert "schema up to date" in said[1] or "schema up to date" in said[0]
    assert any("applied migrations 1" in out for out, _ in outs)


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    await upgrade_schema(pg_config(pg_url))
    conn = await asyncpg.connect(pg_url, password=PASSWORD)
    try:
        await conn.execute("INSERT INTO triage_schema_migrations (version, name) VALUES (999, 'from the future')")
        with pytest.raises(RuntimeError, match="newer than this Triage"):
            await migrate(conn)
    finally:
        await conn.close()


# -- start-up errors --------------------------------------------------------------------------------------------


def triage_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    server = str(Path(__file__).parents[2] / "server")
    full_env = {**os.environ, "PYTHONPATH": server, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "triage", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env)


async def test_a_wrong_password_names_the_setting_and_never_the_password(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "Wr0ng-pw-never-shown")
    with pytest.raises(ConfigError) as caught:
        await PostgresStore(pg_config(pg_url)).start()
    message = str(caught.value)
    assert "store.url" in message and PASSWORD_ENV in message and "refused the login" in message
    assert "Wr0ng-pw-never-shown" not in message and PASSWORD not in message


async def test_an_unreachable_database_is_a_clear_start_up_error(postgres: Postgres) -> None:
    config = pg_config(f"postgresql://triage@127.0.0.1:9/{'nodb'}", pool={"connect": 1.0})
    with pytest.raises(StoreUnavailable, match=r"store.url: cannot reach PostgreSQL at 127.0.0.1:9/nodb"):
        await PostgresStore(config).start()
    with pytest.raises(ConfigError, match="does not exist"):
        await PostgresStore(pg_config(postgres.url("no_such_db"))).start()


def test_a_password_in_the_url_is_refused() -> None:
    with pytest.raises(ValueError, match="must not hold a password") as caught:
        StoreConfig(url="postgresql://triage:hunter2@127.0.0.1/db")
    assert "hunter2" not in str(caught.value)


def config_file(tmp_path: Path, store: dict[str, Any]) -> Path:
    path = tmp_path / "triage.yaml"
    config = yaml.safe_load((Path(__file__).parents[2] / "server/triage/data/triage.default.yaml").read_text())
    config["store"] = store
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_serve_exits_naming_the_setting_when_the_password_is_wrong(pg_url: str, tmp_path: Path) -> None:
    path = config_file(tmp_path, store_config(pg_url))
    proc = triage_cli("serve", "--config", str(path), "--port", "0", env={PASSWORD_ENV: "Wr0ng-pw-never-shown"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert "store.url" in err and PASSWORD_ENV in err
    assert "Wr0ng-pw-never-shown" not in out + err and "Traceback" not in err


def test_serve_exits_naming_the_setting_when_the_database_is_unreachable(tmp_path: Path) -> None:
    path = config_file(tmp_path, {"url": "postgresql://triage@127.0.0.1:9/triage", "pool": {"connect": 1}})
    proc = triage_cli("serve", "--config", str(path), "--port", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert "store.url: cannot reach PostgreSQL at 127.0.0.1:9/triage" in err and "Traceback" not in err


def test_export_command_reads_the_shared_database(pg_url: str, tmp_path: Path) -> None:
    async def fill() -> None:
        async with open_store(pg_config(pg_url)) as store:
            store.submit(make_record("req_x1"))
            await store.flush()
            await store.add_correction("req_x1", "reasoning")

    asyncio.run(fill())
    out = tmp_path / "export.jsonl"
    proc = triage_cli("export", "--config", str(config_file(tmp_path, store_config(pg_url))), "--out", str(out))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [json.loads(line)["type"] for line in out.read_text().splitlines()] == ["decision", "correction"]


# -- an outage: PostgreSQL restarted under load ----------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    """A cluster of this test's own, to stop and start."""
    with running_postgres() as server:
        yield server


async def test_decisions_buffered_while_postgres_restarts_are_written_after(own_postgres: Postgres) -> None:
    url = own_postgres.create_database()
    config = pg_config(url, queue_size=5000, pool={"command": 2.0, "acquire": 1.0, "connect": 1.0})
    async with open_store(config) as store:
        assert isinstance(store, PostgresStore)
        for i in range(200):
            store.submit(make_record(f"req_before_{i}"))
        await store.flush()
        await asyncio.to_thread(own_postgres.stop)
        for i in range(300):
            store.submit(make_record(f"req_during_{i}"))
            await asyncio.sleep(0.002)
        with pytest.raises(StoreUnavailable):
            await store.stats(bucket="hour", since=0, until=time.time() + 1)
        assert store.queued == 300 and not store.healthy
        await asyncio.to_thread(own_postgres.start)
        await store.flush(within=15)
        assert store.dropped == 0 and store.healthy
    rows = await raw(url, "SELECT COUNT(*) FROM triage_decisions")
    assert rows[0][0] == 500


async def test_the_buffer_is_bounded_during_an_outage(own_postgres: Postgres) -> None:
    url = own_postgres.create_database()
    config = pg_config(url, queue_size=50, batch_size=10, pool={"command": 2.0, "acquire": 1.0, "connect": 1.0})
    async with open_store(config) as store:
        await asyncio.to_thread(own_postgres.stop)
        for i in range(80):
            store.submit(make_record(f"req_{i}"))
            await asyncio.sleep(0)
        # The batch in hand (being retried, at most 10) + 50 queued; the rest counted as dropped, never silently.
        kept = store.queued
        assert 51 <= kept <= 60 and store.dropped == 80 - kept
        await asyncio.to_thread(own_postgres.start)
        await store.flush(within=15)
    rows = await raw(url, "SELECT COUNT(*) FROM triage_decisions")
    assert rows[0][0] == kept


async def test_sqlite_and_postgres_flush_on_stop(pg_url: str, tmp_path: Path) -> None:
    for config in (StoreConfig(path=str(tmp_path / "s.db")), pg_config(pg_url)):
        store = SQLiteStore(config) if config.url is None else PostgresStore(config)
        await store.start()
        for i in range(100):
            store.submit(make_record(f"req_{i}"))
        await store.stop()
        async with open_store(config) as reopened:
            assert len([r async for r in reopened.iter_decisions()]) == 100
