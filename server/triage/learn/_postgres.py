"""The store on PostgreSQL (`store.url`), shared by every instance: asyncpg, one pool per process.

Decision records take the same way as in the SQLite store: `submit` puts them on a bounded queue and never waits;
one writer task takes whatever is queued (up to `store.batch_size`) and inserts it in one transaction, on a
connection and an event loop of its own in a thread (as SQLite's writer thread): the driver's work for a batch
(~0.1-0.3 ms of CPU) then never sits on the serving loop between a request's arrival and its first token. What is
different is what happens when the database goes away (a restart, a fail-over): the batch in hand is kept and
retried with capped backoff while new records wait in the queue, so nothing is lost unless the queue fills
(`store.queue_size`, counted in `dropped`). A retried batch is written once (`ON CONFLICT DO NOTHING`). On
shutdown the queue is written out, waiting for the database at most `store.flush_timeout` seconds.

Reads and corrections wait for a pooled connection at most `store.pool.acquire` seconds and for each statement at
most `store.pool.command`; past that the caller gets `StoreUnavailable` (503, retryable), never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from triage._config import StoreConfig
from triage._exceptions import NotFound, StoreUnavailable
from triage.learn import _postgres_sql as sql
from triage.learn._migrations import migrate
from triage.learn._pg import Conn, connect, create_pool, describe, is_transient, where
from triage.learn._queue import DecisionQueue, background, log_purge, retention_cutoff, stop_background
from triage.learn._records import DecisionRecord
from triage.learn._store import Bucket, Correction, LabeledText, Stats

__all__ = ["PostgresStore"]

logger = logging.getLogger("triage.store")

# Between retries of a batch while the database is away: from the first to the last, doubling.
_RETRY_FIRST, _RETRY_MAX = 0.05, 1.0
_OUTAGE_LOG_INTERVAL = 30.0
# A correction for a decision not written yet: it may still be queued on another instance, whose writer commits
# within milliseconds. Looked for again for this long before the request id counts as unknown.
_SETTLE_SECONDS = 1.0


class _WriterThread:
    """An event loop in a thread with one connection, for the decision batches (see the module docstring)."""

    def __init__(self, config: StoreConfig) -> None:
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="triage-store-pg-writer", daemon=True)
        self._conn: asyncpg.Connection[Any] | None = None
        self._thread.start()

    async def insert(self, batch: list[DecisionRecord]) -> None:
        future = asyncio.run_coroutine_threadsafe(self._insert(batch), self._loop)
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    async def _insert(self, batch: list[DecisionRecord]) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect(self._config)
        try:
            await sql.insert_decisions(self._conn, batch)
        except BaseException:
            self._conn.terminate()  # a broken or timed-out connection is not reused; the next batch reconnects
            self._conn = None
            raise

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), timeout=self._config.pool.command)
            self._conn = None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), self._loop))
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 5.0)
        if not self._thread.is_alive():
            self._loop.close()


class PostgresStore:
    """`Store` on PostgreSQL. `purge_interval` (seconds) is how often expired text is cleared; `clock` for tests."""

    def __init__(
        self, config: StoreConfig, *, purge_interval: float = 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        if config.url is None:
            raise ValueError("PostgresStore needs store.url")
        self.config = config
        self._purge_interval = purge_interval
        self._clock = clock
        self._queue = DecisionQueue(config.queue_size, keep_text=config.text == "full")
        self._written = 0
        self._pool: asyncpg.Pool | None = None
        self._writer: _WriterThread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._outage_since: float | None = None
        self._outage_logged = 0.0

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @property
    def queued(self) -> int:
        """Records waiting to be written: in the queue and in the batch in hand."""
        return len(self._queue)

    @property
    def written(self) -> int:
        return self._written

    @property
    def healthy(self) -> bool:
        return self._outage_since is None

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            if self._pool is not None:
                return
            pool = await create_pool(self.config)  # ConfigError / StoreUnavailable, naming store.url
            try:
                async with pool.acquire(timeout=self.config.pool.acquire) as conn:
                    await migrate(conn)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
            self._writer = _WriterThread(self.config)
            self._queue.closed = False
            await self.purge()
            self._tasks = background(self._write_loop(), self.purge, self._purge_interval)

    async def stop(self) -> None:
        async with self._lock:
            if self._pool is None:
                return
            self._queue.closed = True
            try:
                await self.flush(within=self.config.flush_timeout)
            except StoreUnavailable:
                lost = self.queued
                self._queue.lose(lost)
                logger.error("store: PostgreSQL at %s still unreachable after %g s (store.flush_timeout): "
                             "%d decision records not written", where(self.config), self.config.flush_timeout, lost)
            await stop_background(self._tasks)
            if self._writer is not None:
                await self._writer.close()
                self._writer = None
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=self.config.pool.command)
            except _CLOSE_ERRORS:
                pool.terminate()

    # -- decisions: off the request path --------------------------------------------------------------------

    def submit(self, record: DecisionRecord) -> None:
        self._queue.submit(record)

    async def flush(self, *, within: float | None = None) -> None:
        """Wait until every record submitted before this call is written; StoreUnavailable after `within`
        seconds (default `store.pool.command`) while the database is away."""
        if self._pool is None:
            return
        try:
            async with asyncio.timeout(self.config.pool.command if within is None else within):
                await self._queue.flush()
        except TimeoutError:
            raise StoreUnavailable(
                f"the store's database is unreachable; {self.queued} decision records are buffered and will be "
                "written when it is back"
            ) from None

    async def _write_loop(self) -> None:
        while True:
            batch = await self._queue.next_batch(self.config.batch_size)
            await self._write(batch)
            await self._queue.done(batch)

    async def _write(self, batch: list[DecisionRecord]) -> None:
        delay = _RETRY_FIRST
        while True:
            try:
                assert self._writer is not None
                await self._writer.insert(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not (is_transient(exc) or isinstance(exc, StoreUnavailable)):
                    self._queue.lose(len(batch))
                    logger.exception("could not write %d decision records; dropped", len(batch))
                    return
                self._outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            self._written += len(batch)
            if self._outage_since is not None:
                logger.warning("store: PostgreSQL at %s reachable again after %.1f s; buffered decisions written",
                               where(self.config), time.monotonic() - self._outage_since)
                self._outage_since = None
            return

    def _outage(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        if now - self._outage_logged >= _OUTAGE_LOG_INTERVAL:
            self._outage_logged = now
            logger.warning("%s; %d decision records buffered, retrying", describe(exc, self.config), self.queued)

    async def purge(self, *, now: float | None = None) -> int:
        cutoff = retention_cutoff(self.config, self._clock() if now is None else now)
        async with self._connection() as conn:
            return log_purge(self.config, await sql.purge_text(conn, cutoff))

    # -- corrections: durable before returning --------------------------------------------------------------

    async def add_correction(
        self, request_id: str, category: str, *, note: str | None = None, key_id: str | None = None
    ) -> Correction:
        if self._queue.pending(request_id) is not None:
            await self.flush()
        deadline = time.monotonic() + _SETTLE_SECONDS
        while True:
            now = self._clock()
            async with self._connection() as conn:
                correction = await sql.insert_correction(conn, request_id, category, note, key_id, now)
            if correction is not None:
                return correction
            if time.monotonic() >= deadline:
                raise NotFound(f"no decision with request id {request_id!r}", param="request_id",
                               code="unknown_request_id")
            await asyncio.sleep(0.05)

    # -- reading --------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        if self._pool is None:
            raise RuntimeError("the store is not started: await store.start() first")
        try:
            async with self._pool.acquire(timeout=self.config.pool.acquire) as conn:
                yield conn
        except StoreUnavailable:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailable(describe(exc, self.config)) from None
            raise

    async def get_decision(self, request_id: str) -> DecisionRecord | None:
        pending = self._queue.pending(request_id)
        if pending is not None:
            return pending
        async with self._connection() as conn:
            return await sql.get_decision(conn, request_id)

    async def iter_decisions(
        self, *, since: float | None = None, until: float | None = None, page: int = 1000
    ) -> AsyncIterator[DecisionRecord]:
        after = -1
        while True:
            async with self._connection() as conn:
                rows = await sql.page_decisions(conn, after, since, until, page)
            for seq, record in rows:
                after = seq
                yield record
            if len(rows) < page:
                return

    async def corrections(self, *, since: float | None = None) -> list[Correction]:
        async with self._connection() as conn:
            return await sql.corrections(conn, since)

    async def labeled_texts(self) -> list[LabeledText]:
        async with self._connection() as conn:
            return await sql.labeled_texts(conn)

    async def stats(self, *, bucket: Bucket, since: float, until: float) -> Stats:
        async with self._connection() as conn:
            return await sql.stats(conn, bucket, since, until)


_CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, OSError, asyncpg.InterfaceError, asyncpg.PostgresError)
