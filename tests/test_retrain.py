"""Head versions, rollback, and moving a running server onto a new head while it streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from harness import SimControl, gateway_config, sim_control, sim_server  # noqa: F401
from test_feedback import KEYS, LoopGateway, auth, learning_app
from triage._auth import hash_key
from triage._background import BackgroundServer
from triage._classifier import DEFAULT_CATEGORIES, Classifier, ClassifyInput, Decision, LayerTiming
from triage._heads import DEFAULT_VERSION, HeadVersions, heads_dir


class Tagged:
    """A classifier that says which head version it was built from."""

    def __init__(self, version: str) -> None:
        self.name = "local"
        self.version = version

    @property
    def categories(self) -> Sequence[str]:
        return DEFAULT_CATEGORIES

    async def classify(self, request: ClassifyInput) -> Decision:
        await asyncio.sleep(0.002)  # a request can be mid-classification when the swap happens
        return Decision("simple", 0.9, {"simple": 0.9, "reasoning": 0.05, "tool_use": 0.05}, self.name, 2.0,
                        (LayerTiming("local", 2.0),))


def tagged_build(path: Path | None) -> Classifier:
    if path is None:
        return Tagged(DEFAULT_VERSION)
    content = (path / "head.txt").read_text()
    if content == "broken":
        raise ValueError("not a head")
    return Tagged(path.name)


def stage(versions: HeadVersions, content: str) -> str:
    staging = versions.staging()
    (staging / "head.txt").write_text(content)
    return versions.install(staging, {"note": content})


def test_versions_install_and_roll_back(tmp_path: Path) -> None:
    versions = HeadVersions(tmp_path / "heads")
    assert versions.current() == DEFAULT_VERSION and versions.versions() == []
    with pytest.raises(LookupError):
        versions.rollback()
    assert stage(versions, "one") == "v0001"
    assert stage(versions, "two") == "v0002"
    assert versions.current() == "v0002"
    assert versions.info("v0002").meta["parent"] == "v0001"
    assert (tmp_path / "heads" / "v0002" / "head.txt").read_text() == "two"
    assert versions.rollback() == ("v0002", "v0001")
    assert versions.rollback() == ("v0001", DEFAULT_VERSION)
    # Versions are kept: a rolled-back version can be put back, and the next install numbers on.
    versions.set_current("v0002")
    assert stage(versions, "three") == "v0003"
    assert [p.name for p in (tmp_path / "heads").iterdir() if p.name.startswith(".")] == []
    actions = [json.loads(line)["action"] for line in (tmp_path / "heads" / "history.jsonl").read_text().splitlines()]
    assert actions == ["install", "install", "rollback", "rollback", "install"]


async def _stream(http: httpx.AsyncClient, i: int) -> tuple[int, str]:
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": f"tell me a story {i}"}]}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=auth("admin")) as response:
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    return response.status_code, lines[-1] if lines else ""


async def test_reload_while_streaming_fails_nothing(sim_control: SimControl, tmp_path: Path) -> None:  # noqa: F811
    sim_control.behave("cheap", ttft_ms=20, tokens_per_s=100, completion_tokens=40)  # streams of ~0.4 s
    config = gateway_config(
        sim_control.url, store={"path": str(tmp_path / "triage.db")},
        auth={"keys": [{"id": f"{role}-1", "sha256": hash_key(key), "role": role} for role, key in KEYS.items()]},
    )
    versions = HeadVersions(heads_dir(config))
    stage(versions, "one")  # v0001 is in service before the server starts: it loads it at start
    gateway = LoopGateway(config, build=tagged_build, classifier=Tagged(DEFAULT_VERSION), watch_interval=0.02)
    with BackgroundServer(learning_app(gateway)) as server:
        assert gateway.heads.loaded == "v0001"
        assert isinstance(gateway.classifier, Tagged) and gateway.classifier.version == "v0001"
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            streams = [asyncio.create_task(_stream(http, i)) for i in range(24)]
            await asyncio.sleep(0.05)
            stage(versions, "two")  # picked up by the watcher
            assert not any(task.done() for task in streams)  # the swap happens mid-stream
            reloads = [await http.post("/v1/admin/reload", headers=auth("admin")) for _ in range(3)]
            more = [asyncio.create_task(_stream(http, i)) for i in range(24, 32)]
            await asyncio.sleep(0.05)
            stage(versions, "broken")  # fails to load: v0002 stays in service
            await asyncio.sleep(0.1)
            failed = await http.post("/v1/admin/reload", headers=auth("admin"))
            versions.rollback()  # back to v0002, from the command line
            results = await asyncio.gather(*streams, *more)
            forbidden = await http.post("/v1/admin/reload", headers=auth("reviewer"))
    assert results == [(200, "data: [DONE]")] * 32
    assert all(r.status_code == 200 for r in reloads)
    assert reloads[-1].json() == {"object": "triage.head", "version": "v0002", "previous": "v0002", "reloaded": True}
    assert failed.status_code == 500 and "v0003" in failed.json()["error"]["message"]
    assert forbidden.status_code == 403
    assert isinstance(gateway.classifier, Tagged) and gateway.classifier.version == "v0002"
