"""The PostgreSQL store's schema, as numbered migrations applied in order (`triage db upgrade`, and every start).

    triage_schema_migrations   version, name, applied_at: one row per migration applied

Applying holds a session-level advisory lock for its whole run, so two instances starting at once take turns: the
first applies what is missing, the second then finds nothing left to do. Each migration runs in its own
transaction with its row in `triage_schema_migrations`: it is applied entirely or not at all. A database whose
schema is newer than this Triage knows is refused rather than written to.

A new migration is appended to `MIGRATIONS` with the next number; a released one never changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from triage.learn._pg import Conn

__all__ = ["LOCK_KEY", "MIGRATIONS", "Migration", "applied_versions", "migrate"]

logger = logging.getLogger("triage.store")

# pg_advisory_lock's key: any constant that other applications sharing the database are unlikely to use.
LOCK_KEY = 0x7472_6961_6765  # "triage"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "decisions, corrections, head versions", """
CREATE TABLE triage_decisions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    request_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    endpoint TEXT NOT NULL,
    key_id TEXT,
    category TEXT,
    confidence DOUBLE PRECISION,
    scores JSONB NOT NULL,
    classifier TEXT,
    model TEXT,
    reason TEXT NOT NULL,
    speculation TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    baseline_cost_usd DOUBLE PRECISION NOT NULL,
    wasted_prompt_tokens INTEGER NOT NULL,
    wasted_completion_tokens INTEGER NOT NULL,
    wasted_cost_usd DOUBLE PRECISION NOT NULL,
    classify_ms DOUBLE PRECISION,
    ttft_ms DOUBLE PRECISION,
    total_ms DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    text TEXT,
    layers JSONB NOT NULL
);
CREATE INDEX triage_decisions_created_at ON triage_decisions (created_at);
CREATE TABLE triage_corrections (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES triage_decisions (request_id),
    category TEXT NOT NULL,
    router_category TEXT,
    note TEXT,
    key_id TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX triage_corrections_request_id ON triage_corrections (request_id);
CREATE TABLE triage_head_versions (
    number INTEGER PRIMARY KEY CHECK (number > 0),
    artifact BYTEA NOT NULL,
    meta JSONB NOT NULL,
    installed_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE triage_head_current (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    version TEXT NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE triage_head_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    action TEXT NOT NULL,
    fields JSONB NOT NULL
);
"""),
    Migration(2, "the head version retraining is judged against", """
CREATE TABLE triage_head_anchor (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    version TEXT NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL
);
"""),
)

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS triage_schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


async def applied_versions(conn: Conn) -> list[int]:
    exists = await conn.fetchval("SELECT to_regclass('triage_schema_migrations') IS NOT NULL")
    if not exists:
        return []
    return [r[0] for r in await conn.fetch("SELECT version FROM triage_schema_migrations ORDER BY version")]


async def migrate(conn: Conn, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply every migration not applied yet, in order; returns the versions this call applied."""
    known = max((m.version for m in migrations), default=0)
    done = await applied_versions(conn)
    if done and done[-1] >= known:  # the common start: up to date, no lock needed
        _refuse_newer(done, known)
        return []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_BOOKKEEPING)
        done = await applied_versions(conn)  # again, under the lock: another instance may have just applied
        _refuse_newer(done, known)
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO triage_schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name,
                )
            logger.info("store schema: applied migration %d (%s)", migration.version, migration.name)
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


def _refuse_newer(done: list[int], known: int) -> None:
    if done and done[-1] > known:
        raise RuntimeError(
            f"the database's schema is at version {done[-1]}, newer than this Triage knows ({known}): upgrade Triage"
        )
