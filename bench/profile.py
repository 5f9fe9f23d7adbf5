"""Where a serving process spends its time under bench/overhead.py's load: py-spy samples `triage serve` (or the
bare relay, `--target relay`) from outside while the load generator sends streamed requests at one concurrency.

    .venv/bin/python bench/profile.py                        # Triage at concurrency 64, 3,000 requests
    .venv/bin/python bench/profile.py -c 256 --target relay --raw /tmp/relay.txt

Prints the top functions by samples in them (self) and under them (inclusive), the share of samples per package,
then one JSON line (requests per second, CPU ms per request, p50 time to first token, the top 10 self entries).
Samples are wall-clock while the process runs Python (py-spy leaves out idle threads); on a shared machine a
process that waits for a core is sampled where it was preempted, so read shares, not milliseconds. CPU per request
comes from the process's own CPU time over the round. py-spy (dev extra) attaches with ptrace: run as root or
with ptrace allowed.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import Arm, LoadGen, start_floor_proxy, start_sim, start_triage, stopping, stream_body, triage_config

PROMPT = "What is a good name for a small grey cat that likes to sleep on the windowsill?"


def summarize(raw: Path, top: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]], list[tuple[str, float]]]:
    """(self, inclusive, per package) shares of py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            under[frame] += n
        m = re.search(r"\(([^:)]+)", frames[-1])
        path = m.group(1) if m else frames[-1]
        parts = path.split("/")
        packages["/".join(parts[:2]) if parts[0] == "triage" else parts[0]] += n

    def shares(counter: collections.Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, round(100 * c / max(total, 1), 1)) for name, c in counter.most_common(k)]

    return shares(own, top), shares(under, top), shares(packages, top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("-n", "--requests", type=int, default=3000)
    parser.add_argument("--target", choices=["triage", "relay"], default="triage")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    spy_bin = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = args.raw or Path(tempfile.mkstemp(prefix="profile-", suffix=".txt")[1])
    sim = start_sim(ttft_ms=20, tokens_per_s=500, completion_tokens=46)
    with stopping(sim):
        if args.target == "triage":
            server = start_triage(triage_config(sim.url, Path(tempfile.mkdtemp(prefix="bench-profile-"))))
            body = stream_body("auto", PROMPT)
        else:
            server = start_floor_proxy(sim.url)
            body = stream_body("cheap", PROMPT)
        loadgen = LoadGen()
        with stopping(server, loadgen):
            arm = Arm(args.target, server.url, body, server=server)
            loadgen.run(arm, args.concurrency, max(4, args.concurrency), 30, record=False)  # warm connections
            spy = subprocess.Popen(
                [spy_bin, "record", "--pid", str(server.popen.pid), "--rate", str(args.rate), "--format", "raw",
                 "--output", str(raw), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attached
            cpu0 = server.cpu_seconds()
            loadgen.run(arm, args.concurrency, args.requests, 300)
            cpu = server.cpu_seconds() - cpu0
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    own, under, packages = summarize(raw, args.top)
    print(f"--- self (top {args.top})")
    for name, share in own:
        print(f"{share:5.1f}%  {name}")
    print("--- inclusive")
    for name, share in under:
        print(f"{share:5.1f}%  {name}")
    print("--- by package (self)")
    for name, share in packages:
        print(f"{share:5.1f}%  {name}")
    print(json.dumps({
        "bench": "profile", "target": args.target, "concurrency": args.concurrency, "requests": arm.done,
        "errors": arm.errors, "rps": round(arm.rps, 1), "cpu_ms_per_request": round(cpu / max(arm.done, 1) * 1000, 3),
        "ttft_p50_ms": round(statistics.median(arm.ttft) * 1000, 2) if arm.ttft else None,
        "top_self": own[:10],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
