"""Run an ASGI app with uvicorn on a loopback port in a daemon thread, for tests and benchmarks that need a real
HTTP server (the simulated provider, Triage itself) inside the calling process."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn

from ._types import ASGIApp

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """`with BackgroundServer(app) as server: ... server.url ...`

    The socket is bound here, before the thread starts, so `port=0` yields a free port with no window in which
    another process could take it. The server runs its own event loop (uvloop when installed) in a daemon thread.
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
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.config = uvicorn.Config(
            app,
            loop="auto",
            http="httptools",
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
        try:
            self.server.run(sockets=[sock])
        except SystemExit:
            # uvicorn calls sys.exit() when the app's lifespan startup fails; `__enter__` sees the thread end.
            pass

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
