"""Soak: N concurrent streaming requests held for M minutes through Triage to the simulator (issue 8).

The simulator and Triage (`triage serve`) run in processes of their own on free loopback ports; this process is
the client. `--concurrency` workers each send one streamed request after another until `--minutes` are up
(starts spread over one stream's length and stream lengths varied, so requests arrive at a steady rate rather than
in waves), 80% on `/v1/chat/completions`, 20% on `/v1/triage/chat`, over three prompts that route to three models.
Of the requests, 5% are slow readers (32 bytes every 250 ms: slower than the stream is written) and 5% disconnect
after a few tokens. The run is bounded: no request starts after the time is up or past
`--max-requests`, each has a timeout, and the script stops by itself.

Every request ends as one of: ok, ok (slow reader), disconnected (by us: expected), or an unexpected error (any
other status, a stream without its end marker, a transport error, a timeout). Triage's RSS, open file descriptors
and threads are sampled on its pid with psutil: at start (after one request per dialect, once idle connections
settle), after the warm-up, at the end of the load, and once the load has drained. Live asyncio tasks are read from
`triage_asyncio_tasks` in /metrics (null if Triage does not export it).

    .venv/bin/python bench/soak.py                                   # 2,000 streams for 10 minutes
    .venv/bin/python bench/soak.py --minutes 2 --concurrency 500     # a shorter check

Prints progress, a table, then one JSON line of figures and ratios. Goal: zero unexpected errors, RSS growth after
warm-up <= 5%, file descriptors and asyncio tasks back to baseline once the load has drained.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import resource
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import ROOT, Server, json_line, percentile, start_sim, start_triage, stopping

PROMPTS = [
    "What is the capital of France?",  # simple: cheap
    "Prove that the square root of 2 is irrational, step by step.",  # reasoning: strong
    "Write a python function that merges two sorted lists.",
]
_CONTENT = {"openai": re.compile(rb'"content":\s*"[^"]'), "ui": re.compile(rb"event: delta")}
_END = {"openai": b"data: [DONE]", "ui": b"event: done"}
_TASKS = re.compile(rb"^triage_asyncio_tasks(?:\{[^}]*\})? ([0-9.e+]+)$", re.MULTILINE)


def raise_fd_limit(concurrency: int) -> int:
    """Raise this process's soft limit on open files (the servers inherit it): each stream holds a socket here,
    two in Triage (client and upstream) and one in the simulator."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * concurrency + 1024
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def write_config(sim_url: str, workdir: Path, concurrency: int) -> Path:
    """The test harness's config (tests/harness.py) with room for the load: concurrent requests and upstream
    connections above `concurrency` (their defaults, 1024 and 256, would refuse or queue them) and timeouts
    that leave queueing on a loaded 2-core machine to show in the figures rather than as fallbacks."""
    import yaml

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from harness import gateway_config
    finally:
        sys.path.remove(str(ROOT / "tests"))
    room = concurrency + 256
    timeout = {"connect": 10, "first_token": 30, "idle": 30, "total": 300}
    config = gateway_config(
        sim_url,
        providers={"sim": {"base_url": sim_url + "/v1", "timeout": timeout, "max_connections": room},
                   "down": {"base_url": "http://127.0.0.1:9/v1"}},
        server={"max_streams": room},
        store={"path": str(workdir / "triage.db")},
    )
    path = workdir / "triage.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


@dataclass
class Sample:
    t: float  # seconds since the load started (negative: before)
    rss: int
    fds: int
    threads: int
    tasks: int | None
    in_flight: int

    def row(self, label: str) -> str:
        tasks = "-" if self.tasks is None else str(self.tasks)
        return (f"{label:<16} {self.t:8.1f} {self.rss / 2**20:9.1f} {self.fds:6d} {self.threads:7d} {tasks:>6} "
                f"{self.in_flight:9d}")


def probe(server: Server, t: float, in_flight: int) -> Sample:
    proc = server.proc
    with proc.oneshot():
        rss, fds, threads = proc.memory_info().rss, proc.num_fds(), proc.num_threads()
    tasks = None
    with contextlib.suppress(OSError), urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        match = _TASKS.search(response.read())
        tasks = int(float(match.group(1))) if match else None
    return Sample(t, rss, fds, threads, tasks, in_flight)


@dataclass
class Tally:
    issued: int = 0
    in_flight: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)  # normal readers only: a slow reader's own pace skews it

    def fail(self, kind: str, detail: str) -> None:
        self.outcomes["unexpected"] += 1
        self.unexpected[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{kind}: {detail}"[:300])


class Load:
    def __init__(self, args: argparse.Namespace, url: str, session: Any) -> None:
        self.args = args
        self.url = url
        self.session = session
        self.tally = Tally()
        self.stop_at = 0.0

    async def worker(self, index: int, start_delay: float) -> None:
        await asyncio.sleep(start_delay)
        rng = random.Random(self.args.seed * 1_000_003 + index)
        while time.monotonic() < self.stop_at and self.tally.issued < self.args.max_requests:
            self.tally.issued += 1
            draw = rng.random()
            kind = "slow" if draw < self.args.slow else "disconnect" if draw < self.args.slow + self.args.drop else "ok"
            dialect = "ui" if rng.random() < 0.2 else "openai"
            self.tally.in_flight += 1
            try:
                # Lengths vary (max_tokens from half the answer to all of it), so streams started together do not
                # stay in step and arrive again together: a wave of starts is a burst Triage must absorb at once.
                tokens = rng.randint(max(1, self.args.completion_tokens // 2), max(1, self.args.completion_tokens))
                await self.one(kind, dialect, rng.choice(PROMPTS), rng.randint(1, 8), tokens)
            finally:
                self.tally.in_flight -= 1

    async def one(self, kind: str, dialect: str, prompt: str, drop_after: int, max_tokens: int | None = None) -> None:
        import aiohttp

        messages = [{"role": "user", "content": prompt}]
        body: dict[str, Any]
        if dialect == "ui":
            path, body = "/v1/triage/chat", {"messages": messages}
        else:
            path, body = "/v1/chat/completions", {"model": "auto", "stream": True, "messages": messages}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        content, end = _CONTENT[dialect], _END[dialect]
        tally = self.tally
        started = time.perf_counter()
        try:
            async with self.session.post(self.url + path, json=body) as response:
                if response.status != 200:
                    tally.fail(f"http_{response.status}", (await response.read())[:200].decode(errors="replace"))
                    return
                ttft: float | None = None
                pieces = 0
                tail = b""
                while True:
                    data = await (response.content.read(32) if kind == "slow" else response.content.readany())
                    if not data:
                        break
                    window = tail + data
                    found = len(content.findall(window)) - len(content.findall(tail))
                    if found and ttft is None:
                        ttft = time.perf_counter() - started
                    pieces += found
                    tail = window[-96:]
                    if kind == "disconnect" and pieces >= drop_after:
                        response.close()  # drops the connection mid-stream: Triage must cancel the upstream
                        tally.outcomes["disconnected"] += 1
                        return
                    if kind == "slow":
                        await asyncio.sleep(0.25)
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.fail(type(exc).__name__, str(exc))
            return
        if end not in tail:
            tally.fail("no_end_marker", f"{dialect} stream ended with ...{tail[-60:]!r}")
        elif ttft is None:
            tally.fail("no_content", f"{dialect} stream carried no content")
        else:
            tally.outcomes["ok_slow" if kind == "slow" else "ok"] += 1
            if kind == "ok":
                tally.ttft.append(ttft)


async def settle_fds(triage: Server, *, quiet_s: float, within: float) -> int:
    """The fd count once it has not changed for `quiet_s` (idle pooled connections expire), or after `within`."""
    deadline = time.monotonic() + within
    last, since = triage.proc.num_fds(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        await asyncio.sleep(0.5)
        now = triage.proc.num_fds()
        if now != last:
            last, since = now, time.monotonic()
    return int(last)


async def soak(args: argparse.Namespace, triage: Server, sim: Server) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session:  # warm the routes, the store and the upstream pool once
        load = Load(args, triage.url, session)
        load.stop_at = time.monotonic() + 3600
        # Short answers: at the default pace a full one takes a minute, and the warm-up needs only the path.
        await asyncio.gather(*(load.one("ok", dialect, PROMPTS[0], 0, max_tokens=2) for dialect in ("openai", "ui")))
        if load.tally.outcomes["unexpected"]:
            raise RuntimeError(f"Triage failed its first requests: {load.tally.samples}")
    # Idle client connections are dropped before uvicorn's 5 s keep-alive ends, so none is reused as it closes.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=3.0)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        load = Load(args, triage.url, session)
        baseline_fds = await settle_fds(triage, quiet_s=5, within=60)
        start = probe(triage, 0.0, 0)
        start.fds = baseline_fds
        began = time.monotonic()
        cpu0 = {"triage": triage.cpu_seconds(), "sim": sim.cpu_seconds(), "client": _own_cpu()}
        load.stop_at = began + args.minutes * 60
        warm_at = began + args.warmup
        # Starts spread over one stream's length: a steady rate of new requests, not a wave.
        ramp = min(args.completion_tokens / max(args.tokens_per_s, 1e-9), args.warmup / 2)
        workers = [asyncio.ensure_future(load.worker(i, ramp * i / args.concurrency))
                   for i in range(args.concurrency)]
        samples: list[Sample] = []
        warm = end = None
        hard_stop = load.stop_at + args.request_timeout + 30
        print(f"{'':<16} {'t s':>8} {'RSS MB':>9} {'fds':>6} {'threads':>7} {'tasks':>6} {'in flight':>9}"
              f"  outcomes")
        print(start.row("start"), flush=True)
        while not all(w.done() for w in workers):
            await asyncio.wait(workers, timeout=args.interval)
            now = time.monotonic()
            sample = await asyncio.to_thread(probe, triage, now - began, load.tally.in_flight)
            samples.append(sample)
            label = "load" if end is None else "draining"
            if warm is None and now >= warm_at:
                warm, label = sample, "after warm-up"
            if end is None and now >= load.stop_at:
                end, label = sample, "end of load"
            print(sample.row(label), dict(load.tally.outcomes), flush=True)
            if now > hard_stop:
                cut = sum(not w.done() for w in workers)
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                load.tally.fail("hard_stop", f"{cut} requests cut at the hard stop")
                break
        wall = time.monotonic() - began
        cpu = {"triage": triage.cpu_seconds(), "sim": sim.cpu_seconds(), "client": _own_cpu()}
        cores = {name: round((cpu[name] - cpu0[name]) / wall, 2) for name in cpu}
    end = end or samples[-1]
    warm = warm or samples[0]
    sim_stats = await _sim_stats(sim, within=30)
    drained_fds = await settle_fds(triage, quiet_s=5, within=90)
    drained = probe(triage, time.monotonic() - began, 0)
    drained.fds = drained_fds
    print(drained.row("drained"), flush=True)
    return {"tally": load.tally, "start": start, "warm": warm, "end": end, "drained": drained,
            "peak_fds": max(s.fds for s in samples), "peak_rss": max(s.rss for s in samples), "wall": wall,
            "peak_tasks": max((s.tasks for s in samples if s.tasks is not None), default=None),
            "cores": cores, "triage_cpu_s": cpu["triage"] - cpu0["triage"],
            "sim": sim_stats}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _get_json(url: str) -> dict[str, Any]:
    import json

    with urllib.request.urlopen(url, timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


async def _sim_stats(sim: Server, *, within: float) -> dict[str, Any]:
    """The simulator's counters once no stream is active upstream (every cancellation counted), or after `within`."""
    deadline = time.monotonic() + within
    while True:
        stats = await asyncio.to_thread(_get_json, sim.url + "/sim/stats")
        if stats["active"] == 0 or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.5)


def _log_errors(server: Server) -> tuple[int, str | None]:
    """Tracebacks and ERROR lines in the server's log, and the first such line."""
    text = server.log_path.read_text(errors="replace")
    lines = [line for line in text.splitlines() if "Traceback" in line or " ERROR " in line or "ERROR:" in line]
    return len(lines), (lines[0][:200] if lines else None)


def report(args: argparse.Namespace, result: dict[str, Any], triage: Server) -> dict[str, Any]:
    tally: Tally = result["tally"]
    start, warm, end, drained = result["start"], result["warm"], result["end"], result["drained"]
    sim = result["sim"]
    done = sum(tally.outcomes.values())
    expected = tally.outcomes["disconnected"]
    log_errors, log_sample = _log_errors(triage)
    print()
    print(f"requests {done} in {result['wall']:.0f} s ({done / result['wall']:.1f}/s): {dict(tally.outcomes)}")
    print(f"  expected: {expected} client disconnects (the simulator counted {sim['cancelled']} upstream requests "
          f"cancelled; {sim['active']} still active)")
    print(f"  unexpected: {tally.outcomes['unexpected']} {dict(tally.unexpected)}")
    for sample in tally.samples:
        print(f"    sample: {sample}")
    print(f"  time to first token (normal readers): p50 {percentile(tally.ttft, 50) * 1000:.1f} ms, "
          f"p99 {percentile(tally.ttft, 99) * 1000:.1f} ms")
    print(f"  Triage RSS MB: start {start.rss / 2**20:.1f}, after warm-up {warm.rss / 2**20:.1f}, end of load "
          f"{end.rss / 2**20:.1f}, drained {drained.rss / 2**20:.1f}, peak {result['peak_rss'] / 2**20:.1f}")
    tasks = ("not exported" if drained.tasks is None
             else f"baseline {start.tasks}, peak {result['peak_tasks']}, drained {drained.tasks}")
    print(f"  Triage fds: baseline {start.fds}, peak {result['peak_fds']}, drained {drained.fds}; threads "
          f"{start.threads} -> {drained.threads}; asyncio tasks: {tasks}")
    cores = result["cores"]
    print(f"  CPU in cores while loaded: Triage {cores['triage']}, simulator {cores['sim']}, this client "
          f"{cores['client']}; Triage {result['triage_cpu_s'] / done * 1000:.1f} CPU-s per 1,000 requests")
    print(f"  Triage log: {log_errors} error lines" + (f", first: {log_sample}" if log_sample else ""))
    growth = end.rss / warm.rss
    fds_ratio = drained.fds / start.fds
    goals = {"zero_unexpected_errors": tally.outcomes["unexpected"] == 0, "rss_growth_le_5pct": growth <= 1.05,
             "fds_back_to_baseline": drained.fds <= start.fds}
    if start.tasks is not None and drained.tasks is not None:
        goals["tasks_back_to_baseline"] = drained.tasks <= start.tasks
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    mb = 2**20
    return {
        "bench": "soak", "minutes": args.minutes, "concurrency": args.concurrency, "wall_s": round(result["wall"], 1),
        "sim": {"ttft_ms": args.ttft_ms, "tokens_per_s": args.tokens_per_s,
                "completion_tokens": args.completion_tokens},
        "requests": done, "rps": round(done / result["wall"], 1), "ok": tally.outcomes["ok"],
        "ok_slow": tally.outcomes["ok_slow"], "disconnected": expected,
        "unexpected_errors": tally.outcomes["unexpected"], "unexpected_by_kind": dict(tally.unexpected),
        "upstream_cancelled": sim["cancelled"], "upstream_active_after": sim["active"],
        "cancelled_per_disconnect": round(sim["cancelled"] / expected, 3) if expected else None,
        "ttft_p50_ms": round(percentile(tally.ttft, 50) * 1000, 1),
        "ttft_p99_ms": round(percentile(tally.ttft, 99) * 1000, 1),
        "rss_start_mb": round(start.rss / mb, 1), "rss_warm_mb": round(warm.rss / mb, 1),
        "rss_end_mb": round(end.rss / mb, 1), "rss_drained_mb": round(drained.rss / mb, 1),
        "rss_peak_mb": round(result["peak_rss"] / mb, 1),
        "rss_growth_after_warmup_ratio": round(growth, 4),
        "fds_baseline": start.fds, "fds_peak": result["peak_fds"], "fds_end": drained.fds,
        "fds_end_over_baseline": round(fds_ratio, 4),
        "threads_start": start.threads, "threads_end": drained.threads,
        "tasks_start": start.tasks, "tasks_peak": result["peak_tasks"], "tasks_end": drained.tasks,
        "cores_triage": cores["triage"], "cores_sim": cores["sim"], "cores_client": cores["client"],
        "triage_cpu_s_per_1k": round(result["triage_cpu_s"] / done * 1000, 2),
        "triage_log_error_lines": log_errors, "goals": goals,
    }


def _run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load is held")
    parser.add_argument("--concurrency", type=int, default=2000, help="streams in flight")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="seconds before the 'after warm-up' sample (0: max(30, 10%% of the run, two streams' "
                             "length), at most half the run)")
    parser.add_argument("--ttft-ms", type=float, default=200.0, help="the simulator's time to first token")
    # A minute per stream: 2,000 streams are then ~33 requests and ~2,000 chunks a second, which one Triage process
    # holds on a 2-core machine beside the simulator and this client (twice that, 20 s streams, it could not).
    parser.add_argument("--tokens-per-s", type=float, default=1.0, help="per stream")
    parser.add_argument("--completion-tokens", type=int, default=60)
    parser.add_argument("--slow", type=float, default=0.05, help="share of slow readers")
    parser.add_argument("--drop", type=float, default=0.05, help="share of client disconnects")
    parser.add_argument("--max-requests", type=int, default=0, help="no request starts past it (0: 1000 x c)")
    # A slow reader takes ~100 s over a 60-token OpenAI stream (~13 kB at 128 B/s): room above that.
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    stream_s = args.completion_tokens / max(args.tokens_per_s, 1e-9)
    # Past the ramp and one more stream's length: the "after warm-up" sample is taken in the steady state.
    args.warmup = args.warmup or min(max(30.0, seconds / 10, 2 * stream_s), seconds / 2)
    args.max_requests = args.max_requests or 1000 * args.concurrency
    limit = raise_fd_limit(args.concurrency)
    if limit < 2 * args.concurrency + 256:
        print(f"warning: open-file limit {limit} is low for {args.concurrency} streams", file=sys.stderr)

    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    sim = start_sim(ttft_ms=args.ttft_ms, tokens_per_s=args.tokens_per_s, completion_tokens=args.completion_tokens)
    with stopping(sim):
        triage = start_triage(write_config(sim.url, workdir, args.concurrency))
        with stopping(triage):
            result = _run(soak(args, triage, sim))
            out = report(args, result, triage)
    print(json_line(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
