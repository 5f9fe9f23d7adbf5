"""Test harness: the simulator and Triage, each a real uvicorn server on loopback, and small helpers to drive them.

Every Triage server in a test is fresh (model health and metrics start clean); the simulator is shared per session
and reset before each test by the `sim` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from triage import TriageConfig
from triage.app import HeadWithBodyProtocol, create_app
from triage.classify import Classifier
from triage.sim import BackgroundServer
from triage.stream.structured import Patch, WireDecoder


def gateway_config(sim_url: str, **overrides: Any) -> TriageConfig:
    """A three-route config on the simulator: `cheap` for simple and tools, `strong` for reasoning."""
    data: dict[str, Any] = {
        "providers": {
            "sim": {"base_url": sim_url + "/v1", "timeout": {"connect": 2, "first_token": 2, "idle": 2, "total": 30}},
            # Nothing listens on port 9 (discard) of loopback: connections are refused at once.
            "down": {"base_url": "http://127.0.0.1:9/v1", "timeout": {"connect": 1, "first_token": 2}},
        },
        "models": {
            "cheap": {"provider": "sim", "upstream_id": "cheap", "input_per_mtok": 0.15, "output_per_mtok": 0.6},
            "strong": {"provider": "sim", "upstream_id": "strong", "input_per_mtok": 2.5, "output_per_mtok": 10.0},
            "backup": {"provider": "sim", "upstream_id": "backup", "input_per_mtok": 1.0, "output_per_mtok": 4.0},
            "offline": {"provider": "down", "upstream_id": "offline", "input_per_mtok": 0.1, "output_per_mtok": 0.1},
        },
        "routes": {
            "simple": {"models": ["cheap", "backup"]},
            "reasoning": {"models": ["strong", "backup"]},
            "tool_use": {"models": ["cheap", "strong"]},
        },
        "strongest": "strong",
        # The deterministic rules layer alone: tests about the request path should not depend on a learned head.
        "classifier": {"kind": "rules"},
        "server": {"cooldown_after_failures": 2, "cooldown_seconds": 30, "max_retry_after": 1},
        # A fresh SQLite file per config: tests never share decision records (or litter the working tree).
        "store": {"path": str(Path(tempfile.mkdtemp(prefix="triage-test-")) / "triage.db")},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return TriageConfig(**data)


@contextlib.contextmanager
def run_triage(config: TriageConfig, *, classifier: Classifier | None = None) -> Iterator[BackgroundServer]:
    # Served as `triage serve` serves it: each response head goes out with its first body write.
    with BackgroundServer(create_app(config, classifier=classifier), http=HeadWithBodyProtocol) as server:
        yield server


class SimControl:
    """The simulator's control endpoints, synchronously (tests call them between async steps)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def behave(self, model: str, **behaviour: Any) -> None:
        httpx.put(f"{self.url}/sim/models/{model}", json=behaviour).raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.url}/sim/stats").json()
        return stats

    def requests_to(self, model: str) -> int:
        return int(self.stats()["by_model"].get(model, {}).get("requests", 0))

    def last_request(self, model: str) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/sim/requests/{model}/last").json()
        return body

    def reset(self) -> None:
        httpx.post(f"{self.url}/sim/reset", params={"behaviours": "true"}).raise_for_status()


async def ui_stream(
    url: str, body: dict[str, Any], *, timeout: float = 10
) -> tuple[httpx.Response, list[tuple[str, Any]]]:
    """POST /v1/triage/chat and read its named events as (name, data) pairs; a non-200 answer has none."""
    events: list[tuple[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=timeout, trust_env=False) as http,
        http.stream("POST", url + "/v1/triage/chat", json=body) as response,
    ):
        if response.status_code != 200:
            await response.aread()
            return response, events
        name = "message"
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                name = "message"
    return response, events


def patches_of(events: list[tuple[str, Any]]) -> list[Patch]:
    """The structured-output patches a UI stream's `patch` events stand for, decoded by the reference decoder."""
    decoder = WireDecoder()
    return [patch for name, data in events if name == "patch" for patch in decoder.decode(data)]


async def wait_for(predicate: Callable[[], object], within: float = 5.0) -> bool:
    """Whether `predicate()` holds within `within` seconds (polled): for what another thread or process finishes."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())
