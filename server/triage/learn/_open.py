"""Which store and which head versions a config means: SQLite and a directory of versions by default, PostgreSQL
for both when `store.url` is set. Everything that opens a store (the server, `triage export`, `retrain`,
`db upgrade`) comes through here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from triage._config import StoreConfig, TriageConfig
from triage.classify import Classifier
from triage.learn._heads import HeadReloader, HeadStore, HeadVersions, classifier_builder, heads_dir
from triage.learn._store import Store

__all__ = ["head_store", "make_reloader", "make_store", "open_store", "upgrade_schema"]


def make_store(config: StoreConfig, *, purge_interval: float = 3600.0) -> Store:
    """The configured store, not started."""
    if config.url is not None:
        from triage.learn._postgres import PostgresStore

        return PostgresStore(config, purge_interval=purge_interval)
    from triage.learn._sqlite import SQLiteStore

    return SQLiteStore(config, purge_interval=purge_interval)


@contextlib.asynccontextmanager
async def open_store(config: StoreConfig, *, purge_interval: float = 3600.0) -> AsyncIterator[Store]:
    """A started store, stopped (and flushed) on exit: for the CLI and tests."""
    store = make_store(config, purge_interval=purge_interval)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


async def upgrade_schema(config: StoreConfig) -> tuple[list[int], int]:
    """Bring the store's schema up to date (`triage db upgrade`, and `triage serve` before its workers start);
    returns (the migrations applied now, the version the schema is at)."""
    if config.url is None:
        from triage.learn import _sqlite_sql

        conn = _sqlite_sql.connect(config.path)
        try:
            _sqlite_sql.create_schema(conn)
        finally:
            conn.close()
        return [], _sqlite_sql.SCHEMA_VERSION
    from triage.learn._migrations import applied_versions, migrate
    from triage.learn._pg import connect

    pg = await connect(config)
    try:
        applied = await migrate(pg)
        return applied, max(await applied_versions(pg), default=0)
    finally:
        await pg.close()


def head_store(config: TriageConfig) -> HeadStore:
    """Head versions beside the store: in its database with `store.url`, else in `heads/` beside its file."""
    if config.store.url is not None:
        from triage.learn._pg_heads import DatabaseHeads

        return DatabaseHeads(config.store)
    return HeadVersions(heads_dir(config))


def make_reloader(
    config: TriageConfig,
    clients: Mapping[str, Any],
    swap: Callable[[Classifier], None],
    *,
    interval: float = 1.0,
    memory: Any = None,
) -> HeadReloader | None:
    """The reloader for a gateway, or None when its classifier has no head (`classifier.kind: rules`). `memory`:
    the gateway's correction memory, which every head version it loads consults."""
    if config.classifier.kind == "rules":
        return None
    return HeadReloader(head_store(config), classifier_builder(config, clients, memory), swap, interval=interval)
