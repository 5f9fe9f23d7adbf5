"""The default store: one SQLite file in WAL mode.

Every sqlite3 call runs on one of two threads, never on the event loop: a writer thread owns the connection that
inserts (decision batches, corrections, purges) and a reader thread owns one for look-ups, statistics and export.
WAL lets the reader see committed data without waiting for the writer, so a long statistics query never holds up
a correction's commit. Writes use `synchronous=FULL`: each commit (one per batch of decisions) is on disk when it
returns, which is what "a correction is durable before its 200" needs; batching keeps that affordable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from triage._config import StoreConfig
from triage._exceptions import NotFound
from triage.learn import _sqlite_sql as sql
from triage.learn._queue import DecisionQueue, background, log_purge, retention_cutoff, stop_background
from triage.learn._records import DecisionRecord
from triage.learn._store import Bucket, Correction, LabeledText, Stats

__all__ = ["SQLiteStore"]

logger = logging.getLogger("triage.store")

T = TypeVar("T")

# How long the writer waits for more records before a commit, unless a flush is waiting.
_LINGER = 0.025


class _Worker:
    """One thread and the sqlite3 connection it owns (sqlite3 connections belong to the thread that made them)."""

    def __init__(self, name: str, path: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sql.connect(self._path)
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)


class SQLiteStore:
    """`Store` on a SQLite file. `batch_size` bounds one write transaction; `purge_interval` (seconds) is how
    often expired text is cleared while running; `clock` is for tests."""

    def __init__(
        self,
        config: StoreConfig,
        *,
        batch_size: int = 512,
        purge_interval: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.path = config.path
        self._batch_size = batch_size
        self._purge_interval = purge_interval
        self._clock = clock
        self._queue = DecisionQueue(config.queue_size, keep_text=config.text == "full")
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            if self._writer is not None:
                return
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer = _Worker("triage-store-w", self.path)
            await self._writer.run(sql.create_schema)
            self._reader = _Worker("triage-store-r", self.path)
            self._queue.closed = False
            await self.purge()
            self._tasks = background(self._write_loop(), self.purge, self._purge_interval)

    async def stop(self) -> None:
        async with self._lock:
            if self._writer is None:
                return
            self._queue.closed = True
            await self.flush()
            await stop_background(self._tasks)
            assert self._reader is not None
            await self._writer.close()
            await self._reader.close()
            self._writer = self._reader = None

    # -- decisions: off the request path --------------------------------------------------------------------

    def submit(self, record: DecisionRecord) -> None:
        self._queue.submit(record)

    async def flush(self) -> None:
        if self._writer is not None:
            await self._queue.flush()

    async def _write_loop(self) -> None:
        assert self._writer is not None
        while True:
            # Let a batch gather: a commit per record or two meant a thread hand-off (a futex wake) and an fsync per
            # request under load, ~6% of Triage's samples at 64 streams (issue 18). A flush already waiting (a
            # correction's) skips it; one that comes meanwhile waits at most _LINGER more.
            batch = await self._queue.next_batch(self._batch_size, linger=_LINGER)
            try:
                await self._writer.run(functools.partial(sql.insert_decisions, records=batch))
            except asyncio.CancelledError:
                raise
            except Exception:
                self._queue.lose(len(batch))
                logger.exception("could not write %d decision records; dropped", len(batch))
            await self._queue.done(batch)

    async def purge(self, *, now: float | None = None) -> int:
        writer = self._require(self._writer)
        cutoff = retention_cutoff(self.config, self._clock() if now is None else now)
        return log_purge(self.config, await writer.run(lambda conn: sql.purge_text(conn, cutoff)))

    # -- corrections: durable before returning --------------------------------------------------------------

    async def add_correction(
        self, request_id: str, category: str, *, note: str | None = None, key_id: str | None = None
    ) -> Correction:
        writer = self._require(self._writer)
        if self._queue.pending(request_id) is not None:
            await self.flush()
        now = self._clock()
        correction = await writer.run(lambda conn: sql.insert_correction(conn, request_id, category, note, key_id, now))
        if correction is None:
            raise NotFound(f"no decision with request id {request_id!r}", param="request_id", code="unknown_request_id")
        return correction

    # -- reading --------------------------------------------------------------------------------------------

    async def get_decision(self, request_id: str) -> DecisionRecord | None:
        pending = self._queue.pending(request_id)
        if pending is not None:
            return pending
        return await self._require(self._reader).run(lambda conn: sql.get_decision(conn, request_id))

    async def iter_decisions(
        self, *, since: float | None = None, until: float | None = None, page: int = 1000
    ) -> AsyncIterator[DecisionRecord]:
        reader = self._require(self._reader)
        after = -1
        while True:
            rows = await reader.run(
                functools.partial(sql.page_decisions, after=after, since=since, until=until, limit=page)
            )
            for rowid, record in rows:
                after = rowid
                yield record
            if len(rows) < page:
                return

    async def corrections(self, *, since: float | None = None) -> list[Correction]:
        return await self._require(self._reader).run(lambda conn: sql.corrections(conn, since))

    async def labeled_texts(self) -> list[LabeledText]:
        return await self._require(self._reader).run(sql.labeled_texts)

    async def stats(self, *, bucket: Bucket, since: float, until: float) -> Stats:
        return await self._require(self._reader).run(lambda conn: sql.stats(conn, bucket, since, until))

    @staticmethod
    def _require(worker: _Worker | None) -> _Worker:
        if worker is None:
            raise RuntimeError("the store is not started: await store.start() first")
        return worker
