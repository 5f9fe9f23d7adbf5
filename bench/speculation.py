"""Speculative warm-up: time to first token for simple requests with speculation on and off, and the waste on the
others, against the simulator (cheap model 300 ms to first token, LLM classifier 180 ms, and a sweep of both).

"Ideal" is max(classify, cheap TTFT) plus Triage's own overhead, measured in the same run by an arm with no
classification time. The classifier here is a staged stub whose local pass is always unsure and whose LLM pass
sleeps the configured time and returns the request's true category: it measures the speculation mechanism, not a
classifier.

    .venv/bin/python bench/speculation.py [--requests 20]

Prints a table and, as its last line, one JSON object of figures (ratios against the no-speculation run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from triage import ClassifyInput, Decision, TriageConfig
from triage.app import create_app
from triage.classify import DEFAULT_CATEGORIES
from triage.sim import BackgroundServer, SimBehaviour, SimConfig, create_sim_app

MIX = [("simple", 0.60), ("reasoning", 0.25), ("tool_use", 0.15)]
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}


class SimulatedLLMCascade:
    """Unsure locally; the LLM pass takes `delay_ms` and knows the answer (the category is the text's first word)."""

    name = "cascade"

    def __init__(self, delay_ms: float) -> None:
        self.delay = delay_ms / 1000
        self.expected_llm_ms = delay_ms

    @property
    def categories(self) -> Sequence[str]:
        return DEFAULT_CATEGORIES

    async def classify_local(self, request: ClassifyInput) -> Decision:
        return Decision("simple", 0.3, {"simple": 0.3}, "local", 0.05)

    def needs_llm(self, decision: Decision) -> bool:
        return True

    async def escalate(self, request: ClassifyInput, decision: Decision) -> Decision:
        await asyncio.sleep(self.delay)
        category = request.last_user.split()[0]
        return Decision(category, 0.95, {category: 0.95}, "llm", self.delay * 1000)

    async def classify(self, request: ClassifyInput) -> Decision:
        return await self.escalate(request, await self.classify_local(request))


def config(sim_url: str, mode: str, store: Path) -> TriageConfig:
    return TriageConfig(
        providers={"sim": {"base_url": sim_url + "/v1"}},
        models={
            "cheap": {"provider": "sim", "upstream_id": "cheap", "input_per_mtok": 0.15, "output_per_mtok": 0.6},
            "strong": {"provider": "sim", "upstream_id": "strong", "input_per_mtok": 2.5, "output_per_mtok": 10.0},
        },
        routes={"simple": {"models": ["cheap"]}, "reasoning": {"models": ["strong"]},
                "tool_use": {"models": ["cheap", "strong"]}},
        strongest="strong",
        speculation={"mode": mode, "model": "cheap"},
        store={"path": str(store)},
    )


async def ask(http: httpx.AsyncClient, url: str, category: str, i: int) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": f"{category} request number {i}"}], "seed": i}
    if category == "tool_use":
        body["tools"] = [TOOL]
    started = time.perf_counter()
    first: float | None = None
    usage: dict[str, Any] = {}
    route: dict[str, Any] = {}
    async with http.stream("POST", url + "/v1/triage/chat", json=body) as response:
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if name in ("delta", "tool_call") and first is None:
                    first = time.perf_counter() - started
                elif name == "usage":
                    usage = data
                elif name == "route":
                    route = data
    assert first is not None, "no token"
    return {"ttft_ms": first * 1000, "usage": usage, "route": route, "category": category}


async def run_arm(url: str, categories: list[str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=30) as http:
        return [await ask(http, url, category, i) for i, category in enumerate(categories)]


def measure(classify_ms: float, cheap_ttft_ms: float, n: int, tmp: Path) -> dict[str, Any]:
    sim = SimConfig(models={
        "cheap": SimBehaviour(ttft_ms=cheap_ttft_ms, tokens_per_s=400, completion_tokens=60),
        "strong": SimBehaviour(ttft_ms=cheap_ttft_ms, tokens_per_s=200, completion_tokens=60),
    })
    mix = [c for c, share in MIX for _ in range(round(share * n * 2))]
    results: dict[str, Any] = {}
    with BackgroundServer(create_sim_app(sim)) as sim_server:
        # "base": no classification time at all, to measure Triage's own overhead on this machine in this run.
        for mode, delay in (("base", 0.0), ("never", classify_ms), ("auto", classify_ms)):
            spec_mode = "never" if mode == "base" else mode
            app = create_app(config(sim_server.url, spec_mode, tmp / f"{mode}-{classify_ms}-{cheap_ttft_ms}.db"),
                             classifier=SimulatedLLMCascade(delay), ui=False)
            with BackgroundServer(app) as triage:
                asyncio.run(run_arm(triage.url, ["simple"] * 3))  # warm the pools
                simple = asyncio.run(run_arm(triage.url, ["simple"] * n))
                mixed = asyncio.run(run_arm(triage.url, mix))
            cost = sum(r["usage"]["cost_usd"] + r["usage"].get("wasted_cost_usd", 0.0) for r in mixed)
            waste = sum(r["usage"].get("wasted_cost_usd", 0.0) for r in mixed)
            results[mode] = {
                "ttft_p50_ms": statistics.median(r["ttft_ms"] for r in simple),
                "cost_usd": cost,
                "waste_usd": waste,
                "hits": sum(r["route"]["speculation"] == "hit" for r in mixed),
                "misses": sum(r["route"]["speculation"] == "miss" for r in mixed),
            }
    off, on = results["never"], results["auto"]
    # The best speculation can do: the longer of the two waits, plus what Triage adds to any request.
    overhead = results["base"]["ttft_p50_ms"] - cheap_ttft_ms
    ideal = max(classify_ms, cheap_ttft_ms) + overhead
    return {
        "classify_ms": classify_ms,
        "cheap_ttft_ms": cheap_ttft_ms,
        "ttft_off_ms": round(off["ttft_p50_ms"], 1),
        "ttft_on_ms": round(on["ttft_p50_ms"], 1),
        "ideal_ms": round(ideal, 1),
        "triage_overhead_ms": round(overhead, 1),
        "excess_over_ideal_ms": round(on["ttft_p50_ms"] - ideal, 1),
        "hidden_share_of_classify": round((off["ttft_p50_ms"] - on["ttft_p50_ms"]) / classify_ms, 3),
        "ttft_ratio": round(on["ttft_p50_ms"] / off["ttft_p50_ms"], 3),
        "waste_share_of_cost": round(on["waste_usd"] / on["cost_usd"], 4) if on["cost_usd"] else 0.0,
        "cost_ratio_on_vs_off": round(on["cost_usd"] / off["cost_usd"], 4) if off["cost_usd"] else None,
        "hits": on["hits"],
        "misses": on["misses"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20, help="simple requests per arm (the mix is twice that)")
    args = parser.parse_args(argv)
    sweep = [(180.0, 300.0), (180.0, 150.0), (60.0, 300.0), (400.0, 300.0)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for classify_ms, cheap_ttft_ms in sweep:
            rows.append(measure(classify_ms, cheap_ttft_ms, args.requests, Path(tmp)))
    header = f"{'classify':>9} {'cheap ttft':>10} | {'ttft off':>9} {'ttft on':>8} {'ideal':>6} {'excess':>7} " \
             f"{'hidden':>7} | {'waste/cost':>10} {'cost on/off':>11} {'hit':>4} {'miss':>4}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['classify_ms']:>7.0f}ms {r['cheap_ttft_ms']:>8.0f}ms | {r['ttft_off_ms']:>7.1f}ms "
              f"{r['ttft_on_ms']:>6.1f}ms {r['ideal_ms']:>4.0f}ms {r['excess_over_ideal_ms']:>5.1f}ms "
              f"{r['hidden_share_of_classify']:>7.1%} | {r['waste_share_of_cost']:>10.2%} "
              f"{r['cost_ratio_on_vs_off']:>11.3f} {r['hits']:>4} {r['misses']:>4}")
    main_row = rows[0]
    summary = {
        "bench": "speculation",
        "requests_per_arm": args.requests,
        "mix": dict(MIX),
        "rows": rows,
        "ttft_ratio_on_vs_off": main_row["ttft_ratio"],
        "excess_over_ideal_ms": main_row["excess_over_ideal_ms"],
        "hidden_share_of_classify": main_row["hidden_share_of_classify"],
        "waste_share_of_cost": main_row["waste_share_of_cost"],
        "goal_within_5ms_of_ideal": main_row["excess_over_ideal_ms"] <= 5.0,
        "goal_hidden_ge_90pct": main_row["hidden_share_of_classify"] >= 0.9,
        "goal_waste_le_5pct": main_row["waste_share_of_cost"] <= 0.05,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
