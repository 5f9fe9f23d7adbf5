"""Versions of the local classifier's head, and the reloader that moves a running server onto a new one.

On disk (by default `heads/` beside the store's file):

    heads/
      v0001/  head files (whatever `Head.save` writes) + meta.json (when, from what, the evaluation)
      v0002/
      current             the version in service: "v0002", or "default" for the configured/shipped head
      anchor              the version every retrained candidate is judged against (absent: "default")
      history.jsonl       one line per install, rollback and refused candidate

`current` is replaced atomically (write a temporary file, fsync, rename), so a reader sees the old name or the
new one, never half of one. Servers notice a new pointer by polling it (`HeadReloader`, once a second by default;
polling works on every filesystem, inotify does not on network mounts) or at once on `POST /v1/admin/reload`.

That is `HeadVersions`, for one host. With `store.url` the versions live in PostgreSQL instead
(`triage.learn._pg_heads.DatabaseHeads`: the artifact, the pointer and the history in tables), and a change reaches
every instance at once by LISTEN/NOTIFY, the poll staying as the fallback. Both keep the `HeadStore` protocol, which
is all retraining (`_retrain`) and the reloader use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from triage._config import TriageConfig
from triage._exceptions import ClassifierError, InvalidRequest
from triage.classify import Classifier

__all__ = [
    "DEFAULT_VERSION",
    "Build",
    "HeadReloader",
    "HeadStore",
    "HeadVersions",
    "ReloadResult",
    "VersionInfo",
    "classifier_builder",
    "heads_dir",
    "previous_version",
    "roll_back",
]

logger = logging.getLogger("triage.heads")

DEFAULT_VERSION = "default"
_POINTER = "current"
_ANCHOR = "anchor"
_VERSION = re.compile(r"^v(\d{4,})$")


def heads_dir(config: TriageConfig) -> Path:
    """Where versions live: `heads/` in the store's directory, so the learning loop's state stays together."""
    return Path(config.store.path).resolve().parent / "heads"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    name: str
    path: Path | None  # None: the default head
    meta: dict[str, Any]


Unsubscribe = Callable[[], Awaitable[None]]


class HeadStore(Protocol):
    """Where head versions live and which one is in service: what retraining, rollback and the reloader use."""

    @property
    def location(self) -> str:
        """Where the versions are, for messages (a directory, or the database's host and name)."""
        ...

    def current(self) -> str: ...

    def anchor(self) -> str:
        """The version retraining judges every candidate against (`default` unless pinned)."""
        ...

    def pin_anchor(self, name: str) -> None: ...

    def path_of(self, name: str) -> Path | None:
        """A local directory holding version `name`'s files; None for the default head."""
        ...

    def info(self, name: str) -> VersionInfo: ...

    def versions(self) -> list[str]: ...

    def staging(self) -> Path: ...

    def discard(self, staging: Path) -> None: ...

    def install(self, staging: Path, meta: dict[str, Any]) -> str: ...

    def set_current(self, name: str) -> None: ...

    def previous(self) -> str: ...

    def rollback(self) -> tuple[str, str]: ...

    def log(self, action: str, **fields: Any) -> None: ...

    async def subscribe(self, wake: Callable[[], None]) -> Unsubscribe | None:
        """Call `wake` (on the running loop) whenever the version in service may have changed; None when this store
        cannot tell, and the reloader only polls."""
        ...

    def close(self) -> None: ...


def previous_version(store: HeadStore) -> str:
    """The version before the one in service: the next older installed one, else the default head."""
    current = store.current()
    if current == DEFAULT_VERSION:
        raise LookupError("the default head is in service: there is nothing older to roll back to")
    older = [n for n in store.versions() if int(n[1:]) < int(current[1:])]
    return older[-1] if older else DEFAULT_VERSION


def roll_back(store: HeadStore) -> tuple[str, str]:
    """Put the previous version in service; returns (from, to). Versions are kept, so this can be undone with
    `set_current`."""
    current = store.current()
    target = store.previous()
    store.set_current(target)
    store.log("rollback", version=target, previous=current)
    return current, target


class HeadVersions:
    """`HeadStore` on a directory (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    @property
    def pointer(self) -> Path:
        return self.root / _POINTER

    def current(self) -> str:
        """The version in service; `default` when nothing was ever installed."""
        try:
            name = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return DEFAULT_VERSION
        return name or DEFAULT_VERSION

    def anchor(self) -> str:
        """The version retraining judges every candidate against: an admin's pinned one, else the default head."""
        try:
            name = (self.root / _ANCHOR).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return DEFAULT_VERSION
        return name or DEFAULT_VERSION

    def pin_anchor(self, name: str) -> None:
        """Make `name` the anchor (an admin vouches for it); `default` unpins."""
        if name != DEFAULT_VERSION and name not in self.versions():
            raise LookupError(f"no version {name!r} in {self.root}")
        self._write_atomically(_ANCHOR, name)
        self.log("anchor", version=name)

    def path_of(self, name: str) -> Path | None:
        """The directory of version `name`; None for the default head."""
        if name == DEFAULT_VERSION:
            return None
        if not _VERSION.match(name):
            raise ValueError(f"not a head version: {name!r}")
        return self.root / name

    def info(self, name: str) -> VersionInfo:
        path = self.path_of(name)
        meta: dict[str, Any] = {}
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        return VersionInfo(name, path, meta)

    def versions(self) -> list[str]:
        """Installed versions, oldest first."""
        if not self.root.is_dir():
            return []
        names = [p.name for p in self.root.iterdir() if p.is_dir() and _VERSION.match(p.name)]
        return sorted(names, key=lambda n: int(n[1:]))

    def staging(self) -> Path:
        """A fresh directory to save a candidate head into, before it is judged."""
        path = self.root / f".staging-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def install(self, staging: Path, meta: dict[str, Any]) -> str:
        """Make a staged candidate the next version and put it in service."""
        previous = self.current()
        while True:
            existing = self.versions()
            name = f"v{(int(existing[-1][1:]) + 1) if existing else 1:04d}"
            try:
                # mkdir claims the name atomically even against a concurrent `triage retrain`.
                (self.root / name).mkdir()
                break
            except FileExistsError:
                continue
        target = self.root / name
        (staging / "meta.json").write_text(
            json.dumps({**meta, "version": name, "parent": previous, "installed_at": time.time()}, indent=2),
            encoding="utf-8",
        )
        for item in staging.iterdir():
            os.replace(item, target / item.name)
        staging.rmdir()
        self.set_current(name)
        self.log("install", version=name, previous=previous)
        return name

    def set_current(self, name: str) -> None:
        self.path_of(name)  # validates
        self._write_atomically(_POINTER, name)

    def _write_atomically(self, file: str, name: str) -> None:
        """Replace `file` with `name`: a reader sees the old content or the new, never half (write, fsync, rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{file}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / file)
        # The rename itself is durable only once the directory is synced.
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def previous(self) -> str:
        return previous_version(self)

    def rollback(self) -> tuple[str, str]:
        return roll_back(self)

    def log(self, action: str, **fields: Any) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "history.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"at": time.time(), "action": action, **fields}) + "\n")

    async def subscribe(self, wake: Callable[[], None]) -> Unsubscribe | None:
        return None  # a file's change is seen by polling it

    def close(self) -> None:
        pass


# -- the running server's side ----------------------------------------------------------------------------------

Build = Callable[[Path | None], Classifier]


def classifier_builder(config: TriageConfig, clients: Mapping[str, Any], memory: Any = None) -> Build:
    """`build(version_dir)`: the configured classifier (`local` or `cascade`) with that version's head as its
    local layer; None: the default head (`classifier.head`, else the shipped one). `memory`: the gateway's
    correction memory, which every head version consults (it outlives them)."""

    def build(path: Path | None) -> Classifier:
        from triage.classify import LocalClassifier, build_classifier
        from triage.learn._trainer import HEAD_FILE

        head = path / HEAD_FILE if path is not None else config.classifier.head
        local = LocalClassifier.load(head, categories=config.categories, memory=memory)
        return build_classifier(config, clients, local=local)

    return build


@dataclass(frozen=True, slots=True)
class ReloadResult:
    version: str
    previous: str | None
    reloaded: bool

    def to_dict(self) -> dict[str, object]:
        return {"object": "triage.head", "version": self.version, "previous": self.previous, "reloaded": self.reloaded}


class HeadReloader:
    """Keeps a server's classifier on the version in service.

    `build(path)` makes the configured classifier with the head in `path` (None: the default head); it runs in a
    thread, since loading weights blocks. `swap(classifier)` installs it: one reference assignment, so a request
    classifies entirely with the old classifier or entirely with the new one, and streams already answering are
    not touched. A version that fails to load is logged and skipped until the pointer moves again; the old
    classifier stays in service.

    The reloader checks every `interval` seconds, and at once when the store says something changed (PostgreSQL's
    NOTIFY). It owns `versions` and closes it on `stop()`.
    """

    def __init__(
        self, versions: HeadStore | None, build: Build, swap: Callable[[Classifier], None], *,
        interval: float = 1.0,
    ) -> None:
        self.versions = versions
        self._build = build
        self._swap = swap
        self._interval = interval
        # The server starts on the default head (built from the config before the reloader runs).
        self.loaded: str = DEFAULT_VERSION
        self._failed: str | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._unsubscribe: Unsubscribe | None = None

    async def start(self) -> None:
        """Load the version in service if it is not the default, then watch for changes."""
        if self.versions is None or self._task is not None:
            return
        self._wake = asyncio.Event()
        self._unsubscribe = await self.versions.subscribe(self._wake.set)
        await self._check()
        self._task = asyncio.create_task(self._watch(), name="triage-head-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._unsubscribe is not None:
            await self._unsubscribe()
            self._unsubscribe = None
        if self.versions is not None:
            await asyncio.to_thread(self.versions.close)

    async def reload(self, *, force: bool = False) -> ReloadResult:
        if self.versions is None:
            raise InvalidRequest("classifier.kind is rules: there is no head to reload", code="no_head")
        versions = self.versions
        async with self._lock:
            name = await asyncio.to_thread(versions.current)
            if name == self.loaded and not force:
                return ReloadResult(name, self.loaded, False)
            try:
                # path_of may fetch the version from the database: in the thread too.
                classifier = await asyncio.to_thread(lambda: self._build(versions.path_of(name)))
            except Exception as exc:
                self._failed = name
                logger.exception("could not load head %s; keeping %s", name, self.loaded)
                raise ClassifierError(f"could not load head {name}: {type(exc).__name__}; kept {self.loaded}") from exc
            self._swap(classifier)
            previous, self.loaded, self._failed = self.loaded, name, None
            logger.info("classifier head %s in service (was %s)", name, previous)
            return ReloadResult(name, previous, True)

    async def _check(self) -> None:
        assert self.versions is not None
        name = await asyncio.to_thread(self.versions.current)
        if name not in (self.loaded, self._failed):
            with contextlib.suppress(ClassifierError):  # logged; retried when the pointer moves
                await self.reload()

    async def _watch(self) -> None:
        assert self._wake is not None
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self._check()
            except Exception:
                if not failing:  # once per outage, not once a second
                    logger.exception("watching head versions at %s failed; will retry",
                                     self.versions and self.versions.location)
                failing = True
            else:
                if failing:
                    logger.info("watching head versions at %s again", self.versions and self.versions.location)
                failing = False
