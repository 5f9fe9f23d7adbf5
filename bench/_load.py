"""Shared pieces of `bench/overhead.py` and `bench/peers.py`: servers in their own processes on free loopback
ports, their CPU and peak RSS, and a lean streaming load generator that runs in a process of its own.

Every bench compares arms *within one run*, interleaved round by round (the machine is shared, absolute times
drift), and reports ratios. Nothing here runs when the file itself is executed (`make bench` runs bench/*.py).

The load generator: one aiohttp session per target (warm keep-alive connections across rounds), `concurrency`
workers posting the same streamed body; per request the time to the first chunk that carries content and the time
to the end of the stream (`data: [DONE]`). The bench drives it over stdin/stdout, one JSON object a line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

__all__ = [
    "BENCH",
    "ROOT",
    "Arm",
    "LoadGen",
    "Server",
    "figures",
    "free_port",
    "interleaved",
    "json_line",
    "measure",
    "percentile",
    "print_table",
    "start_floor_proxy",
    "start_sim",
    "start_triage",
    "stopping",
    "stream_body",
    "triage_config",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def json_line(data: Any) -> str:
    """`data` as one line of strict JSON: NaN and infinities (no figure) become null."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(data))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _load_prctl() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl() if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: only the libc call loaded beforehand. The child gets SIGKILL when
    # the bench dies, however it dies, so no server outlives a run.
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_PREEXEC = _die_with_parent if _PRCTL is not None else None


# -- servers in their own processes ------------------------------------------------------------------------------


def _environ(changes: dict[str, str | None] | None) -> dict[str, str]:
    """This process's environment with `changes` applied; a None value removes the variable."""
    env = dict(os.environ)
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class Server:
    """A server subprocess: waits until `ready_path` answers, samples its RSS (with children) for the peak, reads
    its CPU seconds (with children), stops on `stop()`."""

    def __init__(self, name: str, argv: Sequence[str], port: int, *, ready_path: str,
                 env: dict[str, str | None] | None = None,
                 startup_timeout: float = 60.0, log: Path | None = None) -> None:
        import psutil

        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log or Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop())
        self.popen = subprocess.Popen(
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_environ(env), preexec_fn=_PREEXEC,
        )
        self.proc = psutil.Process(self.popen.pid)
        self.peak_rss = 0
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        try:
            self._wait_ready(ready_path, startup_timeout)
        except BaseException:
            self.stop()
            raise
        self._sampler.start()

    def _wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; log: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    if response.status < 500:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:g}s; log: {self.tail()}")

    def _procs(self) -> list[Any]:
        import psutil

        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        import psutil

        total = 0
        for p in self._procs():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _vm_hwm(self) -> int:
        # The kernel's own high-water mark of the main process (Linux), which sampling could miss between ticks.
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _sample(self) -> None:
        while not self._stop_sampling.wait(0.1):
            self.peak_rss = max(self.peak_rss, self.rss(), self._vm_hwm())

    def peak_rss_mb(self) -> float:
        self.peak_rss = max(self.peak_rss, self.rss(), self._vm_hwm())
        return self.peak_rss / 2**20

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for p in self._procs():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        self._stop_sampling.set()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()


def start_sim(*, ttft_ms: float, tokens_per_s: float, completion_tokens: int, python: str = sys.executable) -> Server:
    port = free_port()
    argv = [python, "-m", "triage", "sim", "--port", str(port), "--ttft-ms", str(ttft_ms),
            "--tokens-per-s", str(tokens_per_s), "--completion-tokens", str(completion_tokens),
            "--log-level", "warning"]
    return Server("sim", argv, port, ready_path="/v1/models")


def triage_config(sim_url: str, workdir: Path, *, classifier: str = "rules") -> Path:
    """The test harness's config on the simulator (`tests/harness.py: gateway_config`), as a YAML file, with the
    store kept in `workdir` and the classifier kind `classifier`."""
    import yaml

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from harness import gateway_config
    finally:
        sys.path.remove(str(ROOT / "tests"))
    config = gateway_config(sim_url, store={"path": str(workdir / "triage.db")}, classifier={"kind": classifier})
    data = config.model_dump(mode="json", exclude_unset=False)
    path = workdir / "triage.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_triage(config: Path, *, log_level: str = "warning", python: str = sys.executable) -> Server:
    """`triage serve` (uvicorn; loop and http "auto" pick uvloop and httptools) on a free port."""
    port = free_port()
    argv = [python, "-m", "triage", "serve", "--config", str(config), "--port", str(port), "--log-level", log_level]
    return Server("triage", argv, port, ready_path="/healthz")


# A floor for any Python gateway: a bare ASGI app under the same uvicorn (uvloop, httptools) that forwards the body
# to the upstream on one shared aiohttp session and relays the bytes back as they come. No parsing, no routing: what
# a process hop in Python costs at the least. With `late_headers` it keeps Triage's rule (DESIGN.md "Headers": the
# response starts only with the first token, so a total failure is still a true 502/504) and Triage's protocol
# (the head written with the first event): the floor under that rule, apart from everything Triage does.
_FLOOR_PROXY = """
import sys, aiohttp, uvicorn
upstream = sys.argv[1]
late = sys.argv[3] == "late"
session = None

async def app(scope, receive, send):
    global session
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await session.close() if session else None
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] != "/v1/chat/completions":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    async with session.post(upstream + scope["path"], data=body, headers={"content-type": "application/json"}) as r:
        start = {"type": "http.response.start", "status": r.status,
                 "headers": [(b"content-type", r.headers.get("content-type", "").encode())]}
        if not late:
            await send(start)
        async for data in r.content.iter_any():
            if late and start is not None:
                await send(start)
                start = None
            await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b""})

if late:
    from triage.app import HeadWithBodyProtocol as http
else:
    http = "httptools"
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http=http, log_level="warning")
"""


def start_floor_proxy(upstream_url: str, *, python: str = sys.executable, late_headers: bool = False) -> Server:
    port = free_port()
    argv = [python, "-c", _FLOOR_PROXY, upstream_url, str(port), "late" if late_headers else "early"]
    return Server("floor-proxy-late" if late_headers else "floor-proxy", argv, port, ready_path="/healthz")


def stream_body(model: str, prompt: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


# -- the load generator ------------------------------------------------------------------------------------------


@dataclass
class Arm:
    """One system under test: where to post, what, and the server process whose CPU the arm is charged."""

    name: str
    url: str
    body: dict[str, Any]
    server: Server | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    wall: float = 0.0
    done: int = 0
    cpu: float = 0.0
    loadgen_busy: float = math.nan  # the load generator's CPU use during the rounds, in cores

    @property
    def rps(self) -> float:
        return self.done / self.wall if self.wall else math.nan

    def cpu_per_1k(self) -> float:
        return self.cpu / self.done * 1000 if self.done else math.nan


class LoadGen:
    """The load generator process. `run(arm, concurrency, requests, max_seconds)` sends one round and adds its
    samples to `arm` (and the CPU its server spent during the round)."""

    def __init__(self, python: str = sys.executable) -> None:
        code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import _load; _load._loadgen_main()"
        self.popen = subprocess.Popen(
            [python, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            preexec_fn=_PREEXEC,
        )
        import psutil

        self.proc = psutil.Process(self.popen.pid)
        if self._read().get("ready") is not True:
            raise RuntimeError("the load generator did not start")

    def _read(self) -> dict[str, Any]:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited ({self.popen.poll()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def run(self, arm: Arm, concurrency: int, requests: int, max_seconds: float, *, record: bool = True) -> None:
        assert self.popen.stdin is not None
        command = {"url": arm.url + "/v1/chat/completions", "body": arm.body, "headers": arm.headers,
                   "concurrency": concurrency, "requests": requests, "max_seconds": max_seconds}
        cpu0 = arm.server.cpu_seconds() if arm.server else 0.0
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()
        result = self._read()
        cpu1 = arm.server.cpu_seconds() if arm.server else 0.0
        if not record:
            return
        arm.ttft += result["ttft"]
        arm.total += result["total"]
        arm.chunks += result["chunks"]
        arm.errors += result["errors"]
        arm.error_samples = (arm.error_samples + result["error_samples"])[:5]
        arm.wall += result["wall"]
        arm.done += len(result["total"])
        arm.cpu += cpu1 - cpu0

    def cpu_seconds(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.popen.poll() is None:
            assert self.popen.stdin is not None
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@contextlib.contextmanager
def stopping(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in reversed(things):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.stop()


def interleaved(arms: Sequence[Arm], rounds: int) -> Iterator[tuple[int, Arm]]:
    """Round r visits the arms forwards when r is even, backwards when odd (ABBA), so neither arm always runs
    right after the other or always first after a pause."""
    for r in range(rounds):
        for arm in (arms if r % 2 == 0 else list(reversed(arms))):
            yield r, arm


def measure(loadgen: LoadGen, arms: Sequence[Arm], concurrency: int, *, rounds: int, per_round: int,
            deadline: float, round_cap: float = 30.0, warmup: int | None = None) -> bool:
    """Warm every arm (unrecorded), then `rounds` interleaved rounds of `per_round` requests per arm. Stops early
    (returns True) when `deadline` (time.monotonic) comes; a round is also cut after `round_cap` seconds."""
    for arm in arms:
        loadgen.run(arm, concurrency, warmup if warmup is not None else max(4, 2 * concurrency), round_cap,
                    record=False)
    cpu0, wall0 = loadgen.cpu_seconds(), time.monotonic()
    truncated = False
    for _, arm in interleaved(arms, rounds):
        left = deadline - time.monotonic()
        if left <= 1:
            truncated = True
            break
        loadgen.run(arm, concurrency, per_round, min(left, round_cap))
    busy = (loadgen.cpu_seconds() - cpu0) / max(time.monotonic() - wall0, 1e-9)
    for arm in arms:
        arm.loadgen_busy = busy
    return truncated


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def figures(arm: Arm, base: Arm) -> dict[str, float]:
    """An arm's latency percentiles (ms), what it adds over `base` (difference of the percentiles), its rate."""
    p = {f"{name}_{q}": percentile(getattr(arm, name), q) for name in ("ttft", "total") for q in (50, 99)}
    b = {f"{name}_{q}": percentile(getattr(base, name), q) for name in ("ttft", "total") for q in (50, 99)}
    out = {f"{k.split('_')[0]}_p{k.split('_')[1]}_ms": _ms(v) for k, v in p.items()}
    out.update({f"added_{k.split('_')[0]}_p{k.split('_')[1]}_ms": _ms(p[k] - b[k]) for k in p})
    out.update({"rps": round(arm.rps, 1), "rps_ratio": round(arm.rps / base.rps, 3) if base.rps else math.nan,
                "cpu_s_per_1k": round(arm.cpu_per_1k(), 2), "requests": arm.done, "errors": arm.errors})
    return out


def print_table(results: dict[int, list[Arm]]) -> None:
    """One row per concurrency and arm; `+` columns are over the first arm of each concurrency (the baseline)."""
    head = (f"{'conc':>4} {'arm':<16} {'n':>5} {'err':>4} {'ttft p50':>9} {'ttft p99':>9} {'total p50':>9} "
            f"{'total p99':>9} {'+ttft p50':>9} {'+ttft p99':>9} {'+tot p50':>9} {'+tot p99':>9} {'rps':>7} "
            f"{'rps/base':>8} {'cpu s/1k':>8}")
    print(head)
    print("-" * len(head))
    for c, arms in results.items():
        for arm in arms:
            f = figures(arm, arms[0])
            added = ["" if arm is arms[0] else f"{f[k]:9.2f}" for k in
                     ("added_ttft_p50_ms", "added_ttft_p99_ms", "added_total_p50_ms", "added_total_p99_ms")]
            print(f"{c:>4} {arm.name:<16} {arm.done:>5} {arm.errors:>4} {f['ttft_p50_ms']:9.2f} "
                  f"{f['ttft_p99_ms']:9.2f} {f['total_p50_ms']:9.2f} {f['total_p99_ms']:9.2f} {added[0]:>9} "
                  f"{added[1]:>9} {added[2]:>9} {added[3]:>9} {f['rps']:7.1f} "
                  f"{f['rps_ratio']:8.3f} {f['cpu_s_per_1k']:8.2f}")
            for sample in arm.error_samples:
                print(f"     error sample ({arm.name}): {sample}")


# -- inside the load generator process ----------------------------------------------------------------------------

_REQUEST_TIMEOUT = 60.0
_KEEPALIVE = 3.0


def _loadgen_main() -> None:
    import asyncio

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_loadgen())


async def _loadgen() -> None:
    import asyncio
    import re

    import aiohttp

    content = re.compile(rb'"content":\s*"[^"]')
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sessions: dict[str, aiohttp.ClientSession] = {}

    def session_for(url: str) -> aiohttp.ClientSession:
        if url not in sessions:
            # Idle connections are dropped before uvicorn's 5 s keep-alive ends: while the other arms run, a
            # server may close this arm's idle ones, and reusing one of those fails the POST on it.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=_KEEPALIVE)
            sessions[url] = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT), auto_decompress=False,
            )
        return sessions[url]

    async def one(session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str]) -> tuple:
        perf = time.perf_counter
        t0 = perf()
        ttft = None
        chunks = 0
        tail = b""
        async with session.post(url, data=payload, headers=headers) as response:
            if response.status != 200:
                body = await response.read()
                raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
            async for data in response.content.iter_any():
                if ttft is None and content.search(tail + data):
                    ttft = perf() - t0
                chunks += data.count(b"data: ")
                tail = (tail + data)[-64:]
        total = perf() - t0
        if b"[DONE]" not in tail:
            raise RuntimeError(f"stream ended without [DONE]: ...{tail[-60:]!r}")
        if ttft is None:
            raise RuntimeError("stream carried no content")
        return ttft, total, chunks

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    while line := await reader.readline():
        command = json.loads(line)
        result = await _round(session_for(command["url"]), command, one)
        out.write(json.dumps(result) + "\n")
        out.flush()
    for session in sessions.values():
        await session.close()


async def _round(session: Any, command: dict[str, Any], one: Any) -> dict[str, Any]:
    """`concurrency` workers send `requests` requests in all, none started after `max_seconds`."""
    import asyncio

    url, requests = command["url"], command["requests"]
    payload = json.dumps(command["body"]).encode()
    headers = {"content-type": "application/json", **command["headers"]}
    result: dict[str, Any] = {"ttft": [], "total": [], "chunks": [], "errors": 0, "error_samples": []}
    issued = 0
    started = time.perf_counter()
    stop_issuing = started + command["max_seconds"]

    async def worker() -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < stop_issuing:
            issued += 1
            try:
                ttft, total, chunks = await one(session, url, payload, headers)
            except Exception as exc:
                result["errors"] += 1
                if len(result["error_samples"]) < 3:
                    result["error_samples"].append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            result["ttft"].append(ttft)
            result["total"].append(total)
            result["chunks"].append(chunks)

    await asyncio.gather(*(worker() for _ in range(command["concurrency"])))
    result["wall"] = time.perf_counter() - started
    return result
