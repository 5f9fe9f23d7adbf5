"""Run an ASGI app with uvicorn on a loopback port in a daemon thread, for tests and benchmarks that need a real
HTTP server (the simulated provider, Triage itself) inside the calling process."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

import uvicorn

from triage._types import ASGIApp

__all__ = ["BackgroundServer"]

T = TypeVar("T")


class BackgroundServer:
    """`with BackgroundServer(app) as server: ... server.url ...`

    The socket is bound here, before the thread starts, so `port=0` yields a free port with no window in which
    another process could take it. The server runs its own event loop (uvloop when installed) in a daemon thread.
    `http`: uvicorn's HTTP protocol (a name or a class; `triage serve` uses `triage.app.HeadWithBodyProtocol`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        timeout_graceful_shutdown: float | None = 2.0,
        startup_timeout: float = 10.0,
        http: str | type[asyncio.Protocol] = "httptools",
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.config = uvicorn.Config(
            app,
            loop="auto",
            http=http,
            lifespan="auto",
            log_level=log_level,
            # Leave the host process's logging alone: records propagate to the root logger (pytest captures them).
            log_config=None,
            access_log=False,
            # Typed `int | None` by uvicorn, which only hands it to `asyncio.wait_for`: a float works.
            timeout_graceful_shutdown=timeout_graceful_shutdown,  # type: ignore[arg-type]
        )
        self.server = uvicorn.Server(self.config)
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"uvicorn:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.005)
        return self

    def _run(self, sock: socket.socket) -> None:
        # Our own loop (the one uvicorn's `run` would build), kept so `call` can reach it from other threads.
        factory = self.config.get_loop_factory() or asyncio.new_event_loop
        self.loop = factory()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[sock]))
        except SystemExit:
            # uvicorn calls sys.exit() when the app's lifespan startup fails; `__enter__` sees the thread end.
            pass
        finally:
            # As asyncio.run does: cancel what is left (e.g. sse-starlette's shutdown watcher) before closing.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run `fn` on the server's event loop and return its result (tests inspect tasks, counters, state)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            # uvicorn checks `should_exit` every 0.1 s, then waits up to `timeout_graceful_shutdown` for open streams.
            grace = self.config.timeout_graceful_shutdown or 0.0
            self._thread.join(timeout=grace + 5.0)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(timeout=5.0)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
