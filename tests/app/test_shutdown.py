"""Graceful shutdown of a real `triage serve` process: in-flight streams may finish within the grace period; past
it they end with an explicit error event, never a silent cut."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from harness import SimControl, gateway_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_triage(tmp_path: Path, sim_url: str, grace: float) -> tuple[subprocess.Popen[bytes], str]:
    config = gateway_config(sim_url, server={"shutdown_grace": grace}, store={"path": str(tmp_path / "t.db")})
    path = tmp_path / "triage.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "triage", "serve", "--config", str(path), "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("triage serve did not start")


def test_stream_past_the_grace_period_ends_with_an_error_event(tmp_path: Path, sim_control: SimControl) -> None:
    sim_control.behave("cheap", tokens_per_s=10, completion_tokens=300)
    process, url = start_triage(tmp_path, sim_control.url, grace=1.5)
    events: list[tuple[str, dict[str, object]]] = []
    try:
        with httpx.stream("POST", url + "/v1/triage/chat", timeout=15,
                          json={"messages": [{"role": "user", "content": "hello"}]}) as response:
            name = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
                    if name == "delta" and len(events) == 3:
                        process.send_signal(signal.SIGTERM)
                        signalled = time.monotonic()
        ended = time.monotonic() - signalled
        # uvicorn re-raises the captured SIGTERM once it has shut down cleanly.
        assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        process.kill()
    assert events[-1][0] == "error"
    assert events[-1][1]["type"] == "server_shutting_down" and events[-1][1]["retryable"] is True
    assert 0.8 <= ended <= 4.0  # it ran on through the grace period, then ended
    assert sim_control.stats()["cancelled"] == 1


def test_a_stream_that_finishes_within_the_grace_period_is_whole(tmp_path: Path, sim_control: SimControl) -> None:
    sim_control.behave("cheap", tokens_per_s=40, completion_tokens=40)
    process, url = start_triage(tmp_path, sim_control.url, grace=5)
    lines: list[str] = []
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", timeout=15,
                          json={"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
                          ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    lines.append(line)
                    if len(lines) == 2:
                        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the captured SIGTERM once it has shut down cleanly.
        assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        process.kill()
    assert lines[-1] == "data: [DONE]"
