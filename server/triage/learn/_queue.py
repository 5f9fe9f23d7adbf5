"""What every store shares (see `_store`'s contract): the bounded queue between the request path and the store's
writer (`submit` never blocks and never raises, a full or closed queue drops the record and counts it, records not
yet written stay findable by request id, and `flush` waits for everything submitted before it), the writer and the
retention purge as background tasks, and the retention cutoff."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from triage._config import StoreConfig
from triage.learn._records import DecisionRecord

__all__ = ["DecisionQueue", "background", "log_purge", "retention_cutoff", "stop_background"]

logger = logging.getLogger("triage.store")


class DecisionQueue:
    def __init__(self, size: int, *, keep_text: bool) -> None:
        self._queue: asyncio.Queue[DecisionRecord] = asyncio.Queue(maxsize=size)
        self._keep_text = keep_text
        # Records submitted but not yet written, so a correction can tell "still queued" from "unknown".
        self._pending: dict[str, DecisionRecord] = {}
        self._submitted = 0
        self._processed = 0
        self._progress = asyncio.Condition()
        self._flushing = 0  # flush() calls waiting
        self.in_hand = 0  # records of the batch being written (or retried)
        self.dropped = 0
        self.closed = False  # after the store's stop(): nothing would ever write a queued record

    def __len__(self) -> int:
        """Records waiting to be written: in the queue and in the batch in hand."""
        return self._queue.qsize() + self.in_hand

    def pending(self, request_id: str) -> DecisionRecord | None:
        return self._pending.get(request_id)

    def submit(self, record: DecisionRecord) -> None:
        if not self._keep_text and record.text is not None:
            # Dropped here, so under `store.text: none` the text never reaches the queue or the database.
            record = dataclasses.replace(record, text=None)
        try:
            if self.closed:
                raise asyncio.QueueFull
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            # The request path must never wait or fail because of the store: count the loss and move on.
            self.lose(1)
            return
        self._pending[record.request_id] = record
        self._submitted += 1

    def lose(self, n: int) -> None:
        """Count `n` records that will never be written."""
        self.dropped += n
        if n and (self.dropped in (1, 10, 100) or self.dropped % 1000 < n):
            logger.warning("store queue full, closed or failing: %d decision records dropped so far", self.dropped)

    async def flush(self) -> None:
        """Wait until every record submitted before this call is written (or counted as dropped)."""
        target = self._submitted
        async with self._progress:
            self._flushing += 1
            try:
                await self._progress.wait_for(lambda: self._processed >= target)
            finally:
                self._flushing -= 1

    async def next_batch(self, size: int, *, linger: float = 0.0) -> list[DecisionRecord]:
        """The next records to write, at most `size`: waits for one, then (unless a flush is waiting) up to
        `linger` seconds for more to gather, so one commit carries many."""
        batch = [await self._queue.get()]
        if linger and self._queue.qsize() < size and not self._flushing:
            await asyncio.sleep(linger)
        while len(batch) < size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        self.in_hand = len(batch)
        return batch

    async def done(self, batch: list[DecisionRecord]) -> None:
        """`batch` is written (or counted as dropped): its records stop being pending, flushes waiting for it end."""
        self.in_hand = 0
        for record in batch:
            self._pending.pop(record.request_id, None)
        async with self._progress:
            self._processed += len(batch)
            self._progress.notify_all()


def background(write_loop: Coroutine[Any, Any, None], purge: Callable[[], Awaitable[int]],
               interval: float) -> list[asyncio.Task[None]]:
    """A store's two background tasks: its writer, and the retention purge every `interval` seconds."""

    async def purge_loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await purge()
            except Exception:
                logger.exception("retention purge failed; will retry")

    return [
        asyncio.create_task(write_loop, name="triage-store-writer"),
        asyncio.create_task(purge_loop(), name="triage-store-purge"),
    ]


async def stop_background(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()


def retention_cutoff(config: StoreConfig, now: float) -> float:
    """Decisions made before this (unix seconds) lose their text."""
    return now - config.retention_days * 86400


def log_purge(config: StoreConfig, cleared: int) -> int:
    if cleared:
        logger.info("retention: cleared the text of %d decisions older than %s days", cleared, config.retention_days)
    return cleared
