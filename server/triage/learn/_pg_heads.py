"""Head versions in PostgreSQL (`store.url`): every instance serves the same classifier.

    triage_head_versions   number, artifact (a tar of the version's files), meta, installed_at
    triage_head_current    the one row naming the version in service
    triage_head_history    install, rollback and refused candidates, as `history.jsonl` holds them on one host
    triage_head_anchor     the version retraining judges candidates against (absent: the default head)

An install or a change of the version in service commits with `pg_notify('triage_heads', version)`: each server
LISTENs (one connection per process, re-opened if it drops) and reloads at once; its poll once a second stays as
the fallback. Versions never change once installed, so each process unpacks one at most once, into a local cache.

`HeadStore`'s methods are synchronous (retraining is): they run on asyncpg through a private event loop in a thread
of its own (anyio's blocking portal), so they may be called from any thread, never from a running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from anyio.from_thread import BlockingPortal, start_blocking_portal

from triage._config import StoreConfig
from triage.learn._heads import _VERSION, DEFAULT_VERSION, Unsubscribe, VersionInfo, previous_version, roll_back
from triage.learn._migrations import migrate
from triage.learn._pg import connect, is_transient, where

__all__ = ["CHANNEL", "DatabaseHeads"]

logger = logging.getLogger("triage.heads")

CHANNEL = "triage_heads"
T = TypeVar("T")


def _pack(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for item in sorted(directory.iterdir()):
            tar.add(item, arcname=item.name)
    return buffer.getvalue()


def _unpack(artifact: bytes, target: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(artifact), mode="r:gz") as tar:
        tar.extractall(target, filter="data")  # the data filter refuses absolute paths, links out, devices


class DatabaseHeads:
    """`HeadStore` on the store's PostgreSQL database."""

    def __init__(self, config: StoreConfig) -> None:
        if config.url is None:
            raise ValueError("DatabaseHeads needs store.url")
        self.config = config
        digest = hashlib.sha256(where(config).encode()).hexdigest()[:12]
        self.cache = Path(config.heads_cache) if config.heads_cache else (
            Path(tempfile.gettempdir()) / f"triage-heads-{digest}"
        )
        self._portal: BlockingPortal | None = None
        self._portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._conn: asyncpg.Connection | None = None
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return f"postgresql {where(self.config)}"

    # -- the private loop -----------------------------------------------------------------------------------

    def _call(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        with self._lock:
            if self._portal is None:
                self._portal_cm = start_blocking_portal()
                self._portal = self._portal_cm.__enter__()
            portal = self._portal
        return portal.call(self._run, fn)

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        for attempt in (1, 2):
            if self._conn is None or self._conn.is_closed():
                self._conn = await connect(self.config)
                await migrate(self._conn)
            try:
                return await fn(self._conn)
            except Exception as exc:
                if attempt == 2 or not is_transient(exc):
                    raise
                # The connection broke (the database restarted since): once more on a new one.
                with contextlib.suppress(Exception):
                    self._conn.terminate()
                self._conn = None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            portal, cm = self._portal, self._portal_cm
            self._portal = self._portal_cm = None
        if portal is None or cm is None:
            return

        async def close() -> None:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._conn.close(), timeout=self.config.pool.command)
                self._conn = None

        with contextlib.suppress(Exception):
            portal.call(close)
        cm.__exit__(None, None, None)

    # -- HeadStore ------------------------------------------------------------------------------------------

    def current(self) -> str:
        async def current(conn: asyncpg.Connection) -> str:
            name: str | None = await conn.fetchval("SELECT version FROM triage_head_current")
            return name or DEFAULT_VERSION

        return self._call(current)

    def anchor(self) -> str:
        async def anchor(conn: asyncpg.Connection) -> str:
            name: str | None = await conn.fetchval("SELECT version FROM triage_head_anchor")
            return name or DEFAULT_VERSION

        return self._call(anchor)

    def pin_anchor(self, name: str) -> None:
        async def pin(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                if name != DEFAULT_VERSION and (not _VERSION.match(name) or not await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM triage_head_versions WHERE number = $1)", int(name[1:])
                )):
                    raise LookupError(f"no version {name!r} in {self.location}")
                await conn.execute(
                    "INSERT INTO triage_head_anchor (id, version, changed_at) VALUES (TRUE, $1, $2)"
                    " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, changed_at = EXCLUDED.changed_at",
                    name, time.time(),
                )
                await _log(conn, "anchor", {"version": name})

        self._call(pin)

    def versions(self) -> list[str]:
        async def versions(conn: asyncpg.Connection) -> list[str]:
            return [f"v{r[0]:04d}" for r in await conn.fetch("SELECT number FROM triage_head_versions ORDER BY 1")]

        return self._call(versions)

    def path_of(self, name: str) -> Path | None:
        if name == DEFAULT_VERSION:
            return None
        if not _VERSION.match(name):
            raise ValueError(f"not a head version: {name!r}")
        target = self.cache / name
        if (target / ".complete").exists():
            return target

        async def fetch(conn: asyncpg.Connection) -> bytes | None:
            artifact: bytes | None = await conn.fetchval(
                "SELECT artifact FROM triage_head_versions WHERE number = $1", int(name[1:])
            )
            return artifact

        artifact = self._call(fetch)
        if artifact is None:
            raise LookupError(f"no head version {name} in {self.location}")
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = self.cache / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            _unpack(artifact, tmp)
            (tmp / ".complete").touch()
            try:
                os.rename(tmp, target)
            except OSError:  # another process unpacked it first: the same bytes
                if not (target / ".complete").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def info(self, name: str) -> VersionInfo:
        if name == DEFAULT_VERSION:
            return VersionInfo(name, None, {})

        async def meta(conn: asyncpg.Connection) -> str | None:
            value: str | None = await conn.fetchval(
                "SELECT meta FROM triage_head_versions WHERE number = $1", int(name[1:])
            )
            return value

        raw = self._call(meta)
        return VersionInfo(name, self.cache / name, json.loads(raw) if raw else {})

    def staging(self) -> Path:
        self.cache.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=self.cache))

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def install(self, staging: Path, meta: dict[str, Any]) -> str:
        async def install(conn: asyncpg.Connection) -> tuple[str, str]:
            async with conn.transaction():
                # Numbers are taken one install at a time, whichever host retrains.
                await conn.execute("LOCK TABLE triage_head_versions IN EXCLUSIVE MODE")
                number: int = await conn.fetchval("SELECT COALESCE(MAX(number), 0) + 1 FROM triage_head_versions")
                name = f"v{number:04d}"
                previous = await conn.fetchval("SELECT version FROM triage_head_current") or DEFAULT_VERSION
                now = time.time()
                full = {**meta, "version": name, "parent": previous, "installed_at": now}
                (staging / "meta.json").write_text(json.dumps(full, indent=2), encoding="utf-8")
                await conn.execute(
                    "INSERT INTO triage_head_versions (number, artifact, meta, installed_at) VALUES ($1, $2, $3, $4)",
                    number, _pack(staging), json.dumps(full), now,
                )
                await _set_current(conn, name)
                await _log(conn, "install", {"version": name, "previous": previous})
            return name, previous

        name, _ = self._call(install)
        return name

    def set_current(self, name: str) -> None:
        if name != DEFAULT_VERSION and not _VERSION.match(name):
            raise ValueError(f"not a head version: {name!r}")

        async def set_current(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                if name != DEFAULT_VERSION and not await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM triage_head_versions WHERE number = $1)", int(name[1:])
                ):
                    raise LookupError(f"no head version {name} in {self.location}")
                await _set_current(conn, name)

        self._call(set_current)

    def previous(self) -> str:
        return previous_version(self)

    def rollback(self) -> tuple[str, str]:
        return roll_back(self)

    def log(self, action: str, **fields: Any) -> None:
        async def log(conn: asyncpg.Connection) -> None:
            await _log(conn, action, fields)

        self._call(log)

    def history(self) -> list[dict[str, Any]]:
        async def history(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            rows = await conn.fetch("SELECT at, action, fields FROM triage_head_history ORDER BY id")
            return [{"at": r["at"], "action": r["action"], **json.loads(r["fields"])} for r in rows]

        return self._call(history)

    # -- the running server's side: LISTEN on its own loop ----------------------------------------------------

    async def subscribe(self, wake: Callable[[], None]) -> Unsubscribe | None:
        task = asyncio.create_task(self._listen(wake), name="triage-head-listen")

        async def unsubscribe() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        return unsubscribe

    async def _listen(self, wake: Callable[[], None]) -> None:
        """Hold a LISTEN connection; when it drops, wake the reloader (it may have missed a NOTIFY) and reconnect."""
        delay = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self.config)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda *_args: wake())
                delay = 0.1
                wake()  # a change made while no connection listened is caught up at once
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("head versions: LISTEN connection failed (%s); retrying", type(exc).__name__)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=1.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _set_current(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(
        "INSERT INTO triage_head_current (id, version, changed_at) VALUES (TRUE, $1, $2)"
        " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, changed_at = EXCLUDED.changed_at",
        name, time.time(),
    )
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, name)


async def _log(conn: asyncpg.Connection, action: str, fields: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO triage_head_history (at, action, fields) VALUES ($1, $2, $3)",
        time.time(), action, json.dumps(fields, default=str),
    )
