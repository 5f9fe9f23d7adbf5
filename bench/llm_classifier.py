"""The `llm` classifier layer against the simulator: what instructor, the prompt and logprob scoring add to one call.

The simulator runs in its own process (`triage sim`, 0 ms to first token, no token pacing), so the figures are the
client side's cost and loopback HTTP, not a model's. For TOOLS and JSON-schema modes, sequentially and at
concurrency 16, it times

- raw: `client.chat.completions.create` with the very body the classifier sends (the baseline);
- llm: `LLMClassifier.classify` (instructor's `create_with_completion`, validation, logprob scoring),

interleaved in rounds so drift hits both alike. Wall-clock p50/p99 per call, and client CPU per call.

Prints a table, then as its last line one JSON object of figures (ratios measured within this run).
Run: .venv/bin/python bench/llm_classifier.py   (about 15 s)
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx
import openai

from triage import ClassifyInput
from triage.classify._llm import LLMClassifier

ROUNDS = 10
PER_ROUND = 30
CONCURRENCY = 16
REQUEST = ClassifyInput("and what about the second option?", prior_user=("Compare two laptops for me",))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_sim() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "triage", "sim", "--port", str(port), "--ttft-ms", "0", "--tokens-per-s", "0"]
    process = subprocess.Popen([*cmd, "--log-level", "warning"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v1/models").raise_for_status()
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the simulator did not start")


async def _timed(call: Callable[[], Awaitable[Any]], n: int, concurrency: int) -> tuple[list[float], float]:
    """Per-call wall times (ms) and client CPU per call (ms) for `n` calls, `concurrency` at a time."""
    times: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            started = time.perf_counter()
            await call()
            times.append((time.perf_counter() - started) * 1000)

    cpu = time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return times, (time.process_time() - cpu) * 1000 / n


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def _compare(
    client: openai.AsyncOpenAI, control: httpx.AsyncClient, mode: Literal["tools", "json_schema"]
) -> dict[str, Any]:
    classifier = LLMClassifier(client, "clf", mode=mode)
    await classifier.classify(REQUEST)  # warm: instructor's registry, schema caches, the connection
    sent = (await control.get("/sim/requests/clf/last")).json()
    # The body the classifier sent, as the sim received it, without instructor in the way.
    body: dict[str, Any] = {k: v for k, v in sent.items() if k != "messages"}
    messages = classifier.messages(REQUEST)

    def raw() -> Awaitable[Any]:
        return client.chat.completions.create(messages=messages, **body)

    def llm() -> Awaitable[Any]:
        return classifier.classify(REQUEST)

    rows: dict[str, Any] = {}
    for concurrency in (1, CONCURRENCY):
        results: dict[str, tuple[list[float], list[float]]] = {"raw": ([], []), "llm": ([], [])}
        for _ in range(ROUNDS):
            for name, call in (("raw", raw), ("llm", llm)):
                times, cpu = await _timed(call, PER_ROUND, concurrency)
                results[name][0].extend(times)
                results[name][1].append(cpu)
        row: dict[str, Any] = {}
        for name, (times, cpus) in results.items():
            p50, p99, cpu = statistics.median(times), _pct(times, 99), statistics.median(cpus)
            print(f"{mode:<12} {concurrency:>4} {name:<5} {p50:>8.2f} {p99:>8.2f} {cpu:>8.2f}")
            row[name] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "cpu_ms": round(cpu, 2)}
        row["p50_added_ms"] = round(row["llm"]["p50_ms"] - row["raw"]["p50_ms"], 2)
        row["cpu_added_ms"] = round(row["llm"]["cpu_ms"] - row["raw"]["cpu_ms"], 2)
        row["cpu_ratio"] = round(row["llm"]["cpu_ms"] / row["raw"]["cpu_ms"], 2)
        rows[f"{mode}_c{concurrency}"] = row
    return rows


async def main(url: str) -> dict[str, Any]:
    behaviour = {"ttft_ms": 0, "tokens_per_s": 0, "reply": '{"category": "reasoning"}'}
    behaviour["tool_arguments"] = {"category": "reasoning"}
    summary: dict[str, Any] = {}
    async with (
        httpx.AsyncClient(base_url=url) as control,
        openai.AsyncOpenAI(
            base_url=url + "/v1", api_key="x", max_retries=0, http_client=openai.DefaultAioHttpClient(verify=False)
        ) as client,
    ):
        (await control.put("/sim/models/clf", json=behaviour)).raise_for_status()
        print(f"{'mode':<12} {'conc':>4} {'which':<5} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>8}")
        for mode in ("tools", "json_schema"):
            summary |= await _compare(client, control, mode)
    return summary


if __name__ == "__main__":
    sim, sim_url = _start_sim()
    try:
        print(json.dumps(asyncio.run(main(sim_url))))
    finally:
        sim.terminate()
        sim.wait(5)
