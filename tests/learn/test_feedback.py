"""POST /v1/feedback and GET /v1/stats over real HTTP, on a real SQLite file; a correction that survives kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import sys
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SimControl, gateway_config
from starlette.applications import Starlette
from test_store import make_record

from triage import TriageConfig
from triage.app import Gateway, create_app, hash_key
from triage.classify import Classifier
from triage.learn import DecisionRecord, SQLiteStore, open_store
from triage.learn._heads import Build, HeadReloader, HeadVersions, heads_dir
from triage.sim import BackgroundServer

KEYS = {"client": "sk-client", "reviewer": "sk-reviewer", "admin": "sk-admin"}
HOUR = 3600.0


def learning_config(tmp_path: Path, **overrides: Any) -> TriageConfig:
    data: dict[str, Any] = {
        "providers": {"sim": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {
            "cheap": {"provider": "sim", "upstream_id": "cheap", "input_per_mtok": 0.15, "output_per_mtok": 0.6},
            "strong": {"provider": "sim", "upstream_id": "strong", "input_per_mtok": 2.5, "output_per_mtok": 10.0},
        },
        "routes": {
            "simple": {"models": ["cheap"]},
            "reasoning": {"models": ["strong"]},
            "tool_use": {"models": ["cheap", "strong"]},
        },
        "strongest": "strong",
        "store": {"path": str(tmp_path / "triage.db")},
        "auth": {"keys": [{"id": f"{role}-1", "sha256": hash_key(key), "role": role} for role, key in KEYS.items()]},
    }
    data.update(overrides)
    return TriageConfig(**data)


class LoopGateway(Gateway):
    """The Gateway with what the learning loop adds: a store, a head reloader, and the swap point."""

    def __init__(self, config: TriageConfig, *, build: Build | None = None, classifier: Classifier | None = None,
                 watch_interval: float = 1.0) -> None:
        self.sqlite = SQLiteStore(config.store)
        super().__init__(config, classifier=classifier, store=self.sqlite)
        versions = HeadVersions(heads_dir(config)) if build is not None else None
        # The Gateway starts and stops both the store and the reloader.
        self.reloader = HeadReloader(versions, build or (lambda path: self.classifier), self.swap_classifier,
                                     interval=watch_interval)
        self.heads = self.reloader


def learning_app(gateway: LoopGateway) -> Starlette:
    """The app (no UI) serving `gateway`: the learning routes are Triage's own."""
    return create_app(gateway=gateway, ui=False)


@contextlib.contextmanager
def serve(gateway: LoopGateway) -> Iterator[str]:
    with BackgroundServer(learning_app(gateway)) as server:
        yield server.url


def auth(role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[role]}"}


async def seed(config: TriageConfig, records: list[DecisionRecord]) -> None:
    async with open_store(config.store) as store:
        for record in records:
            store.submit(record)


async def test_feedback_stores_a_correction(tmp_path: Path) -> None:
    config = learning_config(tmp_path)
    await seed(config, [make_record("req_a", category="simple")])
    with serve(LoopGateway(config)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            body = {"request_id": "req_a", "category": "reasoning", "note": "a proof, not a fact"}
            response = await http.post("/v1/feedback", json=body, headers=auth("reviewer"))
            assert response.status_code == 200, response.text
            correction = response.json()
            assert correction["object"] == "triage.correction"
            assert (correction["request_id"], correction["category"], correction["router_category"]) == (
                "req_a", "reasoning", "simple")
            assert (correction["agrees"], correction["key_id"], correction["note"]) == (
                False, "reviewer-1", "a proof, not a fact")
            admin = await http.post("/v1/feedback", json={"request_id": "req_a", "category": "simple"},
                                    headers=auth("admin"))
            assert admin.status_code == 200 and admin.json()["agrees"] is True
    async with open_store(config.store) as store:
        assert [c.category for c in await store.corrections()] == ["reasoning", "simple"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"request_id": "req_a", "category": "simple"}, 401, "missing_api_key"),
        (auth("client"), {"request_id": "req_a", "category": "simple"}, 403, "insufficient_role"),
        (auth("reviewer"), {"request_id": "req_nope", "category": "simple"}, 404, "unknown_request_id"),
        (auth("reviewer"), {"request_id": "req_a", "category": "poetry"}, 400, "unknown_category"),
        (auth("reviewer"), {"request_id": "req_a"}, 400, "invalid_value"),
        (auth("reviewer"), {"request_id": "req_a", "category": "simple", "label": "x"}, 400, "invalid_value"),
    ],
)
async def test_feedback_refusals_in_openai_shape(
    tmp_path: Path, headers: dict[str, str], body: dict[str, Any], status: int, code: str
) -> None:
    config = learning_config(tmp_path)
    await seed(config, [make_record("req_a")])
    with serve(LoopGateway(config)) as url:
        async with httpx.AsyncClient() as http:
            response = await http.post(url + "/v1/feedback", json=body, headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and set(error) == {"message", "type", "param", "code"}
    async with open_store(config.store) as store:
        assert await store.corrections() == []


_SERVER = textwrap.dedent("""
    import sys, time
    from starlette.applications import Starlette
    from triage.app._auth import KeyRing
    from triage.sim import BackgroundServer
    from triage._config import TriageConfig
    from triage.app._learning import learning_routes
    from triage.app._http import triage_error_handler
    from triage._exceptions import TriageError
    from triage.learn import SQLiteStore

    class Host:
        def __init__(self, config):
            self.config, self.keys, self.store = config, KeyRing(config.auth), SQLiteStore(config.store)
        async def ensure_started(self):
            await self.store.start()
        def remember(self, request_id, text, category):
            pass

    config = TriageConfig.model_validate_json(sys.argv[1])
    app = Starlette(routes=learning_routes(), exception_handlers={TriageError: triage_error_handler})
    app.state.gateway = Host(config)
    with BackgroundServer(app) as server:
        print(server.url, flush=True)
        time.sleep(600)
""")


async def test_correction_survives_kill_9(tmp_path: Path) -> None:
    config = learning_config(tmp_path)
    await seed(config, [make_record("req_k", category="simple")])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SERVER, config.model_dump_json(), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post("/v1/feedback", json={"request_id": "req_k", "category": "tool_use"},
                                       headers=auth("reviewer"))
        assert response.status_code == 200
        # No graceful anything: the process dies the moment the client has its 200.
        os.kill(process.pid, signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    async with open_store(config.store) as store:
        [correction] = await store.corrections()
    assert correction.to_dict() == response.json()


def random_records(n: int, now: float, rng: random.Random) -> list[DecisionRecord]:
    records = []
    for i in range(n):
        category = rng.choice(["simple", "reasoning", "tool_use", None])
        model = "strong" if category == "reasoning" or (category is None and rng.random() < 0.5) else "cheap"
        prompt, completion = rng.randint(10, 3000), rng.randint(0, 800)
        cost = (prompt * (0.15 if model == "cheap" else 2.5) + completion * (0.6 if model == "cheap" else 10)) / 1e6
        wasted = rng.random() < 0.2
        records.append(make_record(
            f"req_{i}", created_at=now - rng.uniform(0, 6 * HOUR), category=category, model=model,
            reason="forced" if category is None else "confident", prompt_tokens=prompt, completion_tokens=completion,
            cost_usd=cost, baseline_cost_usd=(prompt * 2.5 + completion * 10) / 1e6,
            speculation=rng.choice(["hit", "off"]) if not wasted else "miss",
            wasted_prompt_tokens=prompt if wasted else 0, wasted_completion_tokens=rng.randint(1, 30) if wasted else 0,
            wasted_cost_usd=prompt * 0.15 / 1e6 if wasted else 0.0,
            status=rng.choice(["ok", "ok", "ok", "upstream_error", "cancelled"]),
        ))
    return records


async def test_stats_savings_match_the_decision_records(tmp_path: Path) -> None:
    now = time.time()
    rng = random.Random(7)
    records = random_records(600, now, rng)
    config = learning_config(tmp_path)
    await seed(config, records)
    # Corrections: some requests twice (the latest counts), forced ones too (they count, but not for agreement).
    latest: dict[str, str] = {}
    with serve(LoopGateway(config)) as url:
        async with httpx.AsyncClient(base_url=url, headers=auth("reviewer")) as http:
            for record in rng.sample(records, 80) + rng.sample(records, 20):
                category = rng.choice(["simple", "reasoning", "tool_use"])
                response = await http.post("/v1/feedback", json={"request_id": record.request_id, "category": category})
                assert response.status_code == 200
                latest[record.request_id] = category
            response = await http.get("/v1/stats", params={"bucket": "hour", "since": now - 7 * HOUR,
                                                            "until": now + 1})
            assert response.status_code == 200
            day = (await http.get("/v1/stats", params={"bucket": "day", "since": "2000-01-01"})).json()
    stats = response.json()

    # The independent computation: straight from the records, in Python.
    by_hour: dict[float, list[DecisionRecord]] = defaultdict(list)
    for r in records:
        by_hour[math.floor(r.created_at / HOUR) * HOUR].append(r)
    assert [b["start"] for b in stats["buckets"]] == sorted(by_hour)
    by_id = {r.request_id: r for r in records}
    for bucket in stats["buckets"]:
        rs = by_hour[bucket["start"]]
        assert bucket["requests"] == len(rs)
        assert bucket["saved_usd"] == pytest.approx(sum(r.saved_usd for r in rs), rel=1e-9)
        assert bucket["cost_usd"] == pytest.approx(sum(r.cost_usd for r in rs), rel=1e-9)
        assert bucket["baseline_cost_usd"] == pytest.approx(sum(r.baseline_cost_usd for r in rs), rel=1e-9)
        assert bucket["categories"] == dict(Counter(r.category or "forced" for r in rs))
        assert bucket["models"] == dict(Counter(r.model for r in rs))
        assert bucket["statuses"] == dict(Counter(r.status for r in rs))
        spec = bucket["speculation"]
        assert spec["miss"] == sum(r.speculation == "miss" for r in rs)
        assert spec["wasted_completion_tokens"] == sum(r.wasted_completion_tokens for r in rs)
        assert spec["wasted_cost_usd"] == pytest.approx(sum(r.wasted_cost_usd for r in rs), rel=1e-9, abs=1e-15)
        corrected = [rid for rid in latest if by_id[rid] in rs]
        judged = [rid for rid in corrected if by_id[rid].category is not None]
        assert bucket["corrections"] == len(corrected)
        agreed = sum(latest[rid] == by_id[rid].category for rid in judged)
        assert bucket["agreement"] == (pytest.approx(agreed / len(judged)) if judged else None)
    totals = stats["totals"]
    assert totals["requests"] == 600 and totals["corrections"] == len(latest)
    assert totals["saved_usd"] == pytest.approx(sum(r.saved_usd for r in records), rel=1e-9)
    assert totals["savings_ratio"] == pytest.approx(
        sum(r.saved_usd for r in records) / sum(r.baseline_cost_usd for r in records))
    assert day["totals"]["saved_usd"] == pytest.approx(totals["saved_usd"], rel=1e-9)
    assert day["totals"]["requests"] == 600


@pytest.mark.parametrize(
    ("role", "params", "status"),
    [
        ("client", {}, 403),
        ("reviewer", {"bucket": "week"}, 400),
        ("reviewer", {"since": "yesterday"}, 400),
        ("reviewer", {"since": "2030-01-02", "until": "2030-01-01"}, 400),
        ("reviewer", {"since": "nan"}, 400),
        ("reviewer", {"bucket": "day"}, 200),
    ],
)
async def test_stats_parameters(tmp_path: Path, role: str, params: dict[str, str], status: int) -> None:
    with serve(LoopGateway(learning_config(tmp_path))) as url:
        async with httpx.AsyncClient() as http:
            response = await http.get(url + "/v1/stats", params=params, headers=auth(role))
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["totals"]["requests"] == 0


async def test_stats_include_records_still_queued(tmp_path: Path) -> None:
    gateway = LoopGateway(learning_config(tmp_path))
    await gateway.start()
    try:
        gateway.sqlite.submit(make_record("req_fresh", created_at=time.time() - 5))
        app = learning_app(gateway)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http:
            stats = (await http.get("/v1/stats", headers=auth("reviewer"))).json()
        assert stats["totals"]["requests"] == 1 and stats["dropped"] == 0
    finally:
        await gateway.stop()


async def test_a_routed_request_can_be_corrected_and_counted(sim_control: SimControl, tmp_path: Path) -> None:
    """The whole loop on the app as shipped: answer, record (queued off the request path), correct, count."""
    config = gateway_config(
        sim_control.url, store={"path": str(tmp_path / "triage.db")},
        auth={"keys": [{"id": f"{role}-1", "sha256": hash_key(key), "role": role} for role, key in KEYS.items()]},
    )
    with BackgroundServer(create_app(config, ui=False)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            answer = await http.post("/v1/chat/completions", headers=auth("client"), json={
                "model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
            assert answer.status_code == 200
            request_id, category = answer.headers["x-triage-request-id"], answer.headers["x-triage-category"]
            correction = await http.post("/v1/feedback", headers=auth("reviewer"),
                                         json={"request_id": request_id, "category": "reasoning"})
            assert correction.status_code == 200, correction.text
            assert correction.json()["router_category"] == category
            stats = (await http.get("/v1/stats", headers=auth("reviewer"))).json()
    assert stats["totals"]["requests"] == 1 and stats["totals"]["corrections"] == 1
    assert stats["totals"]["models"] == {"cheap": 1} and stats["totals"]["agreement"] == 0.0
    async with open_store(config.store) as store:
        [example] = await store.labeled_texts()
    assert (example.text, example.category) == ("What is the capital of France?", "reasoning")
