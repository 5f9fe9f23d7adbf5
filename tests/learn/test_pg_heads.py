"""Head versions in PostgreSQL (`DatabaseHeads`): the HeadStore contract the directory keeps, the artifact and its
history in the database, concurrent installs numbered once each, and NOTIFY waking a reloader at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
from servers import PASSWORD, store_config

from triage._config import StoreConfig
from triage.learn import DEFAULT_VERSION, HeadReloader
from triage.learn._heads import HeadStore
from triage.learn._pg_heads import DatabaseHeads


def heads(pg_url: str, cache: Path) -> DatabaseHeads:
    return DatabaseHeads(StoreConfig(**store_config(pg_url, heads_cache=str(cache))))  # type: ignore[arg-type]


def stage(versions: HeadStore, content: str) -> str:
    staging = versions.staging()
    (staging / "head.txt").write_text(content)
    try:
        return versions.install(staging, {"note": content})
    finally:
        versions.discard(staging)


def test_install_roll_back_and_history_in_the_database(pg_url: str, tmp_path: Path) -> None:
    versions = heads(pg_url, tmp_path / "a")
    other = heads(pg_url, tmp_path / "b")  # another host: its own cache, the same database
    try:
        assert versions.current() == DEFAULT_VERSION and versions.versions() == []
        with pytest.raises(LookupError):
            versions.rollback()
        assert stage(versions, "one") == "v0001"
        assert stage(other, "two") == "v0002"
        assert versions.current() == other.current() == "v0002"
        path = other.path_of("v0001")
        assert path is not None and (path / "head.txt").read_text() == "one"  # unpacked from the artifact
        assert other.info("v0002").meta["parent"] == "v0001"
        assert versions.rollback() == ("v0002", "v0001")
        assert other.current() == "v0001"
        with pytest.raises(LookupError):
            other.set_current("v0042")
        assert other.anchor() == DEFAULT_VERSION
        versions.pin_anchor("v0002")
        assert other.anchor() == "v0002"
        with pytest.raises(LookupError):
            other.pin_anchor("v0042")
        actions = [(h["action"], h.get("version")) for h in versions.history()]
        assert actions == [("install", "v0001"), ("install", "v0002"), ("rollback", "v0001"), ("anchor", "v0002")]
    finally:
        versions.close()
        other.close()


def test_concurrent_installs_take_distinct_numbers(pg_url: str, tmp_path: Path) -> None:
    stores = [heads(pg_url, tmp_path / str(i)) for i in range(4)]
    try:
        async def run() -> list[str]:
            return await asyncio.gather(*(asyncio.to_thread(stage, s, f"h{i}") for i, s in enumerate(stores)))

        names = asyncio.run(run())
        assert sorted(names) == ["v0001", "v0002", "v0003", "v0004"]
    finally:
        for s in stores:
            s.close()


async def listening(pg_url: str, within: float = 10.0) -> None:
    """Until the reloader's LISTEN connection is up (its last statement, as PostgreSQL reports it)."""
    conn = await asyncpg.connect(pg_url, password=PASSWORD)
    try:
        deadline = time.monotonic() + within
        while not await conn.fetchval("SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
                                         " AND datname = current_database()"):
            assert time.monotonic() < deadline, "no LISTEN connection"
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def test_notify_wakes_the_reloader_at_once(pg_url: str, tmp_path: Path) -> None:
    served: list[str] = []
    versions = heads(pg_url, tmp_path / "server")
    # A poll once a minute: only the NOTIFY can make the reload quick.
    reloader = HeadReloader(versions, lambda path: path.name if path else DEFAULT_VERSION,  # type: ignore[arg-type,return-value]
                            lambda classifier: served.append(classifier), interval=60)  # type: ignore[arg-type]
    await reloader.start()
    installer = heads(pg_url, tmp_path / "installer")
    try:
        await listening(pg_url)
        started = time.monotonic()
        await asyncio.to_thread(stage, installer, "new")
        while reloader.loaded != "v0001":
            assert time.monotonic() - started < 1.0, "not reloaded within a second"
            await asyncio.sleep(0.01)
        assert served == ["v0001"]
    finally:
        await reloader.stop()
        installer.close()
