"""The embedded local model (SmolLM2-135M-Instruct under llama-cpp-python), straight and through Triage.

Measures
- start-up: from launching the model server to GET /v1/models answering, over a few fresh starts;
- cold first token: time to first token of the first request a fresh server gets (what the demo's warm-up saves);
- warm time to first token and decode rate (tokens/s after the first token) of streamed answers, `rounds` times
  each, alternating straight to the llama server (`direct`) and through Triage (`triage`, `model: "auto"`, uvicorn
  on loopback in this process) so drift on a shared machine hits both alike.

Every answer is greedy (temperature 0, fixed seed) and capped at `--max-tokens`; prompts differ only in a request
number, so both paths decode much the same. A streamed chunk of llama-cpp-python is one token. Prints a table, then
as its last line one JSON object (ratios measured within this run).
Run: .venv/bin/python bench/local_model.py [--rounds 8] [--starts 3] [--threads N]   (1-2 min on a busy 2-core box)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from triage.app import create_app
from triage.demo import LocalModelError, LocalModelServer, find_gguf, local_config, require_llama_cpp
from triage.sim import BackgroundServer

# Each request gets its own first words, so llama-cpp-python cannot reuse the previous request's prompt from its KV
# cache (beyond the chat template's shared system prefix) and every time to first token includes prompt processing.
PROMPT = "Request {n}: explain in a few sentences why the sky is blue."


@dataclass
class Answer:
    ttft: float  # seconds from sending to the first content chunk
    tokens: int  # content chunks
    decode: float  # seconds from the first to the last content chunk

    @property
    def rate(self) -> float:
        return (self.tokens - 1) / self.decode if self.tokens > 1 and self.decode > 0 else 0.0


_sent = 0


async def stream(http: httpx.AsyncClient, url: str, model: str, max_tokens: int) -> Answer:
    global _sent
    _sent += 1
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT.format(n=_sent)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": True,
    }
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    async with http.stream("POST", url + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                last = time.perf_counter()
                tokens += 1
                if tokens == 1:
                    first = last
    return Answer(first - started, tokens, last - first)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args()

    startups: list[float] = []
    cold: list[Answer] = []
    async with httpx.AsyncClient(timeout=120, trust_env=False) as http:
        for i in range(args.starts):
            server = LocalModelServer(n_threads=args.threads, n_ctx=args.n_ctx)
            await server.start()
            assert server.startup_seconds is not None
            startups.append(server.startup_seconds)
            cold.append(await stream(http, server.url, server.alias, args.max_tokens))
            if i < args.starts - 1:
                await server.stop()
            print(f"  start {i + 1}: {server.startup_seconds:.2f} s, cold ttft {cold[-1].ttft:.2f} s", file=sys.stderr)
        threads = server.n_threads
        try:
            with tempfile.TemporaryDirectory() as tmp:
                config = local_config(server.base_url)
                store = config.store.model_copy(update={"path": str(Path(tmp) / "triage.db")})
                config = config.model_copy(update={"store": store})
                with BackgroundServer(create_app(config, ui=False)) as triage:
                    first_through = await stream(http, triage.url, "auto", args.max_tokens)
                    runs: dict[str, list[Answer]] = {"direct": [], "triage": []}
                    for r in range(args.rounds):
                        order = [("direct", server.url, server.alias), ("triage", triage.url, "auto")]
                        for name, url, model in order if r % 2 == 0 else order[::-1]:
                            runs[name].append(await stream(http, url, model, args.max_tokens))
                        print(f"  round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        finally:
            await server.stop()

    print(f"local model: SmolLM2-135M-Instruct Q4_1, llama.cpp threads {threads}, n_ctx {args.n_ctx}")
    print(f"start-up (launch to /v1/models), {args.starts} starts: " + ", ".join(f"{s:.2f} s" for s in startups))
    print("cold first token (first request of a fresh server): " + ", ".join(f"{a.ttft:.2f} s" for a in cold))
    print(f"first request through a fresh Triage (warm model): ttft {first_through.ttft * 1000:.0f} ms")
    print()
    header = f"{'path':8} {'ttft p50 ms':>12} {'ttft min ms':>12} {'tok/s p50':>10} {'tok/s max':>10} {'tokens':>7}"
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {
        "threads": threads,
        "startup_s_median": round(statistics.median(startups), 3),
        "cold_ttft_s_median": round(statistics.median(a.ttft for a in cold), 3),
    }
    for name, answers in runs.items():
        ttft = statistics.median(a.ttft for a in answers)
        rate = statistics.median(a.rate for a in answers)
        print(
            f"{name:8} {ms(ttft):>12} {ms(min(a.ttft for a in answers)):>12} {rate:10.1f} "
            f"{max(a.rate for a in answers):10.1f} {statistics.median(a.tokens for a in answers):7.0f}"
        )
        summary[f"warm_ttft_ms_{name}"] = round(ttft * 1000, 1)
        summary[f"tokens_per_s_{name}"] = round(rate, 1)
    summary["ttft_overhead_ms"] = round(summary["warm_ttft_ms_triage"] - summary["warm_ttft_ms_direct"], 1)
    summary["ttft_ratio"] = round(summary["warm_ttft_ms_triage"] / summary["warm_ttft_ms_direct"], 3)
    summary["rate_ratio"] = round(summary["tokens_per_s_triage"] / summary["tokens_per_s_direct"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    try:
        require_llama_cpp()
        find_gguf()
    except LocalModelError as exc:
        # `make bench` runs every benchmark; without the optional local model this one has nothing to measure.
        print(f"skipped: {exc}", file=sys.stderr)
        print(json.dumps({"skipped": str(exc)}))
        sys.exit(0)
    asyncio.run(main())
