"""Triage beside its peers (issue 9): LiteLLM's proxy on the same load, semantic-router on the same decisions.

Load: the simulated provider, Triage (`triage serve`, `model: auto`), a bare ASGI byte relay on Triage's stack
(`_load.start_floor_proxy`: uvicorn, uvloop, httptools, one aiohttp session; no parsing, no routing: the floor any
Python hop costs) and LiteLLM's proxy (no database, one model pointing at the simulator, a master key, one worker)
run in processes of their own on loopback, all three in front of the same simulator; a separate load generator
sends the same streamed requests to the simulator directly, to Triage, to the relay and to LiteLLM, arms
interleaved round by round, at concurrency 1, 64 and 256. Figures: added time to first token over going straight
to the simulator (p50/p99), requests per second, CPU seconds per 1,000 requests and peak RSS of each gateway
process, and the ratios Triage / LiteLLM and Triage / relay.

The last line's headline keys (issue 18): `added_ttft_p50_ms` and `relay_added_ttft_p50_ms` (c=1, ms over
direct), `vs_litellm_added_ttft_p50` (c=1, Triage's added p50 over LiteLLM's), `c64_rps_vs_direct`,
`c256_rps_vs_relay`, and `cpu_s_per_1k` (Triage's, per concurrency). At c=1 a second relay keeps Triage's rule of
starting the response only with the first token (`relay-late`, DESIGN.md "Headers"), with the head written with
the first event as `triage serve` does: `relay_late_headers_added_ttft_p50_ms` is the floor under that rule, and
`triage_over_late_relay_ttft_p50_ms` what Triage's own work adds over it.

Routing decisions: aurelio's semantic-router (an `IndexedRouter` on the train split's utterances, calibrated with
its own `fit()` on the train split), with Triage's own encoder wrapped as its `DenseEncoder`, against Triage's
classifier, on the test split of ../shared/data/dev.jsonl: macro-F1, under-routing (share of non-simple items
routed to the simple route) and p50/p99 decision latency.

LiteLLM and semantic-router live in their own virtualenv, bench/.venv (ignored by git), made on the first run:

    .venv/bin/python bench/peers.py            # the whole comparison, < 10 minutes from a clean clone
    .venv/bin/python bench/peers.py --quick    # a smoke test
    .venv/bin/python bench/peers.py --skip-routing | --skip-load

Goals: Triage's added p50 TTFT <= 1/10 of LiteLLM's at every concurrency, and at c=1 <= the relay's + 0.5 ms;
c=64 req/s >= 0.90 of direct; c=256 req/s >= 0.90 of the relay's; Triage's decisions better than
semantic-router's on macro-F1 and under-routing at <= 1/5 of its decision latency.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import (
    BENCH,
    ROOT,
    Arm,
    LoadGen,
    Server,
    figures,
    free_port,
    json_line,
    measure,
    print_table,
    start_floor_proxy,
    start_sim,
    start_triage,
    stopping,
    stream_body,
    triage_config,
)

PEERS_VENV = BENCH / ".venv"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
REQUIREMENTS = ["litellm[proxy]", "semantic-router"]
DATA = ROOT.parent / "shared" / "data" / "dev.jsonl"
PROMPT = "What is a good name for a small grey cat that likes to sleep on the windowsill?"
MASTER_KEY = "sk-bench-peers-0123456789abcdef"  # LiteLLM refuses to start open; a loopback-only bench key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--ttft-ms", type=float, default=20.0, help="the simulator's time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=500.0)
    parser.add_argument("--completion-tokens", type=int, default=46, help="46: 50 SSE events per answer")
    parser.add_argument("--classifier", default="rules", help="the serving Triage's classifier.kind in the load part")
    parser.add_argument("--time-limit", type=float, default=570.0, help="seconds for the whole run, install included")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-routing", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests, a routing sample")
    parser.add_argument("--data", type=Path, default=DATA, help="the labelled JSONL (default ../shared/data/dev.jsonl)")
    parser.add_argument("--fit-head", action="store_true",
                        help="fit Triage's head on the train split here even if a shipped head exists")
    args = parser.parse_args(argv)

    started = time.monotonic()
    deadline = started + args.time_limit
    out: dict[str, Any] = {"bench": "peers"}
    try:
        out["versions"] = ensure_peers_venv(deadline)
    except RuntimeError as exc:
        print(f"peers: {exc}", file=sys.stderr)
        out["error"] = str(exc)
        print(json_line(out))
        return 1
    routing_reserve = 0.0 if args.skip_routing else (60.0 if args.quick else 150.0)
    if not args.skip_load:
        out["load"] = run_load(args, deadline - routing_reserve)
        out.update(headline(out["load"]))
    if not args.skip_routing:
        out["routing"] = run_routing(args, deadline)
    out["goals"] = goals(out)
    for name, met in out["goals"].items():
        print(f"goal {name}: {'met' if met else ('NOT met' if met is False else 'not measured')}")
    out["runtime_s"] = round(time.monotonic() - started, 1)
    print(json_line(out))
    return 0


# -- the peers' virtualenv ---------------------------------------------------------------------------------------


def ensure_peers_venv(deadline: float) -> dict[str, str]:
    """bench/.venv with LiteLLM's proxy and semantic-router, made once, then reused. Returns the peers' versions."""
    marker = PEERS_VENV / ".peers-installed"
    wanted = REQUIREMENTS
    if not (marker.exists() and marker.read_text().split("\n") == wanted):
        print(f"peers: installing {' '.join(wanted)} into {PEERS_VENV} (once) ...", file=sys.stderr, flush=True)
        if not PEERS_PYTHON.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        timeout = max(30.0, deadline - time.monotonic() - 240)
        try:
            subprocess.run([str(PEERS_PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted],
                           check=True, timeout=timeout, stdout=subprocess.DEVNULL)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"could not install {wanted} into {PEERS_VENV}: {exc}") from exc
        marker.write_text("\n".join(wanted))
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({p: m.version(p) for p in ('litellm', 'semantic-router')}))")
    versions: dict[str, str] = json.loads(subprocess.run([str(PEERS_PYTHON), "-c", code], check=True,
                                                         capture_output=True, text=True).stdout)
    return versions


# -- load ---------------------------------------------------------------------------------------------------------


def start_litellm(sim_url: str, workdir: Path) -> Server:
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: cheap\n"
        "    litellm_params:\n"
        "      model: openai/cheap\n"
        f"      api_base: {sim_url}/v1\n"
        "      api_key: sk-not-needed\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
    )
    port = free_port()
    argv = [str(PEERS_VENV / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]
    # No DATABASE_URL: no database. The cost map ships inside the package (no fetch); warnings only, so neither
    # gateway writes an access-log line per request.
    env: dict[str, str | None] = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "DATABASE_URL": None}
    return Server("litellm", argv, port, ready_path="/health/liveliness", env=env, startup_timeout=120)


def run_load(args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    sim = start_sim(ttft_ms=args.ttft_ms, tokens_per_s=args.tokens_per_s, completion_tokens=args.completion_tokens)
    with stopping(sim):
        triage = start_triage(triage_config(sim.url, workdir, classifier=args.classifier))
        relay = start_floor_proxy(sim.url)
        relay_late = start_floor_proxy(sim.url, late_headers=True) if 1 in args.concurrency else None
        with stopping(triage, relay, *([relay_late] if relay_late else [])):
            litellm = start_litellm(sim.url, workdir)
            loadgen = LoadGen()
            with stopping(litellm, loadgen):
                results: dict[int, list[Arm]] = {}
                truncated = False
                weights = {c: (1.0 if c == 1 else 1.5 if c <= 64 else 2.0) for c in args.concurrency}
                for i, c in enumerate(args.concurrency):
                    arms = [
                        Arm("direct", sim.url, stream_body("cheap", PROMPT), server=sim),
                        Arm("triage", triage.url, stream_body("auto", PROMPT), server=triage),
                        Arm("relay", relay.url, stream_body("cheap", PROMPT), server=relay),
                        Arm("litellm", litellm.url, stream_body("cheap", PROMPT), server=litellm,
                            headers={"authorization": f"Bearer {MASTER_KEY}"}),
                    ]
                    if c == 1 and relay_late is not None:  # where the headers rule shows: one request at a time
                        arms.append(Arm("relay-late", relay_late.url, stream_body("cheap", PROMPT), server=relay_late))
                    # This concurrency's share of the time left, so a slow peer cannot starve the later ones.
                    left = deadline - time.monotonic()
                    share = weights[c] / sum(weights[x] for x in args.concurrency[i:])
                    phase_deadline = time.monotonic() + left * share
                    # c=1 is the noisiest figure (one request at a time on a shared box): 200 requests per arm.
                    rounds, per_round = (10, 20) if c == 1 else (4, 2 * c) if c <= 64 else (3, c)
                    if args.quick:
                        rounds, per_round = 2, max(4, c)
                    truncated |= measure(loadgen, arms, c, rounds=rounds, per_round=per_round,
                                         deadline=phase_deadline, warmup=4 if c == 1 else c)
                    results[c] = arms
                print_table(results)
                out = load_figures(results)
                out["peak_rss_mb"] = {"triage": round(triage.peak_rss_mb(), 1),
                                      "relay": round(relay.peak_rss_mb(), 1),
                                      "litellm": round(litellm.peak_rss_mb(), 1)}
                out["peak_rss_ratio"] = round(triage.peak_rss_mb() / litellm.peak_rss_mb(), 3)
                out["truncated_by_time_limit"] = truncated
    print(f"\npeak RSS: triage {out['peak_rss_mb']['triage']} MB, litellm {out['peak_rss_mb']['litellm']} MB")
    print(f"{'conc':>4} {'+ttft p50 T/L':>14} {'+ttft p99 T/L':>14} {'rps T/L':>8} {'cpu/1k T/L':>10} "
          f"{'rps T/relay':>11} {'rps T/direct':>12}")
    for c in args.concurrency:
        r = out["ratios"][f"c{c}"]
        print(f"{c:>4} {_fmt(r['added_ttft_p50']):>14} {_fmt(r['added_ttft_p99']):>14} {_fmt(r['rps']):>8} "
              f"{_fmt(r['cpu_s_per_1k']):>10} {_fmt(r['rps_vs_relay']):>11} {_fmt(r['rps_vs_direct']):>12}")
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _ratio(a: float, b: float) -> float:
    # A ratio of added latencies means something only when the peer adds some.
    return round(a / b, 3) if b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan


def load_figures(results: dict[int, list[Arm]]) -> dict[str, Any]:
    out: dict[str, Any] = {"by_concurrency": {}, "ratios": {}}
    keys = ("added_ttft_p50_ms", "added_ttft_p99_ms", "added_total_p50_ms", "added_total_p99_ms", "rps",
            "rps_ratio", "cpu_s_per_1k", "requests", "errors")
    for c, arms in results.items():
        direct, triage, relay, litellm, *late = arms
        t, r, lt = figures(triage, direct), figures(relay, direct), figures(litellm, direct)
        out["by_concurrency"][f"c{c}"] = {
            "direct": {"ttft_p50_ms": figures(direct, direct)["ttft_p50_ms"], "rps": round(direct.rps, 1)},
            "triage": {k: t[k] for k in keys},
            "relay": {k: r[k] for k in keys},
            "litellm": {k: lt[k] for k in keys},
            "loadgen_cpu_busy": round(direct.loadgen_busy, 2),
        }
        if late:
            out["by_concurrency"][f"c{c}"]["relay_late"] = {k: figures(late[0], direct)[k] for k in keys}
        out["ratios"][f"c{c}"] = {
            "added_ttft_p50": _ratio(t["added_ttft_p50_ms"], lt["added_ttft_p50_ms"]),
            "added_ttft_p99": _ratio(t["added_ttft_p99_ms"], lt["added_ttft_p99_ms"]),
            "rps": _ratio(t["rps"], lt["rps"]),
            "cpu_s_per_1k": _ratio(t["cpu_s_per_1k"], lt["cpu_s_per_1k"]),
            "rps_vs_relay": _ratio(t["rps"], r["rps"]),
            "rps_vs_direct": _ratio(t["rps"], direct.rps),
            "added_ttft_p50_minus_relay_ms": round(t["added_ttft_p50_ms"] - r["added_ttft_p50_ms"], 2),
        }
    return out


def headline(load: dict[str, Any]) -> dict[str, Any]:
    """The issue-18 figures, flat, for the last line: c=1 added TTFT (Triage's, the relay's, over LiteLLM's), c=64
    req/s over direct, c=256 req/s over the relay, and Triage's CPU per 1,000 streams at each concurrency."""
    by, ratios = load["by_concurrency"], load["ratios"]
    out: dict[str, Any] = {}
    if "c1" in by:
        out["added_ttft_p50_ms"] = by["c1"]["triage"]["added_ttft_p50_ms"]
        out["relay_added_ttft_p50_ms"] = by["c1"]["relay"]["added_ttft_p50_ms"]
        out["litellm_added_ttft_p50_ms"] = by["c1"]["litellm"]["added_ttft_p50_ms"]
        out["vs_litellm_added_ttft_p50"] = ratios["c1"]["added_ttft_p50"]
        late = by["c1"].get("relay_late")
        if late:
            # The floor under the headers-after-first-token rule, and what Triage adds over it (its own work).
            out["relay_late_headers_added_ttft_p50_ms"] = late["added_ttft_p50_ms"]
            out["triage_over_late_relay_ttft_p50_ms"] = round(out["added_ttft_p50_ms"] - late["added_ttft_p50_ms"], 2)
    for c in ("c64", "c256"):
        if c in by:
            out[f"{c}_rps_vs_direct"] = ratios[c]["rps_vs_direct"]
            out[f"{c}_rps_vs_relay"] = ratios[c]["rps_vs_relay"]
    out["cpu_s_per_1k"] = {c: by[c]["triage"]["cpu_s_per_1k"] for c in by}
    out["relay_cpu_s_per_1k"] = {c: by[c]["relay"]["cpu_s_per_1k"] for c in by}
    return out


# -- routing decisions ------------------------------------------------------------------------------------------


def run_routing(args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    from _routing import routing_report

    return routing_report(args.data, PEERS_PYTHON, quick=args.quick, deadline=deadline, fit_head=args.fit_head)


def goals(out: dict[str, Any]) -> dict[str, bool | None]:
    """Each goal, and each of its parts; None: not measured."""
    result: dict[str, bool | None] = {}
    load = out.get("load")
    if load:
        parts = {c: r["added_ttft_p50"] for c, r in load["ratios"].items()}
        for c, r in parts.items():
            result[f"triage_added_ttft_p50_le_tenth_of_litellm_{c}"] = r is not None and math.isfinite(r) and r <= 0.1
        result["triage_added_ttft_p50_le_tenth_of_litellm"] = all(
            result[f"triage_added_ttft_p50_le_tenth_of_litellm_{c}"] for c in parts
        )
        by = load["by_concurrency"]
        if "c1" in by:
            result["c1_added_ttft_p50_le_relay_plus_0_5ms"] = (
                by["c1"]["triage"]["added_ttft_p50_ms"] <= by["c1"]["relay"]["added_ttft_p50_ms"] + 0.5
            )
        if "c64" in load["ratios"]:
            result["c64_rps_ge_0_9_of_direct"] = load["ratios"]["c64"]["rps_vs_direct"] >= 0.9
        if "c256" in load["ratios"]:
            result["c256_rps_ge_0_9_of_relay"] = load["ratios"]["c256"]["rps_vs_relay"] >= 0.9
    routing = out.get("routing")
    if routing and routing.get("triage") and routing.get("semantic_router"):
        t, s = routing["triage"], routing["semantic_router"]
        result["triage_macro_f1_higher"] = t["macro_f1"] > s["macro_f1"]
        result["triage_under_routing_lower"] = t["under_routing"] < s["under_routing"]
        result["triage_latency_p50_le_fifth"] = t["latency_p50_ms"] <= s["latency_p50_ms"] / 5
        result["triage_decisions_better_at_fifth_latency"] = (
            result["triage_macro_f1_higher"] and result["triage_under_routing_lower"]
            and result["triage_latency_p50_le_fifth"]
        )
    return result


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
