"""Prometheus metrics, one registry per app (so several apps in one process, e.g. tests, never collide).

Under `triage serve --workers N` every worker is a process of its own and a scrape reaches one of them:
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `serve` before the workers start) keeps
each worker's values in files there, and `/metrics` on any worker reports their sum: counters and histograms add
up, the live gauges (tasks, store queue) add up over the workers alive.
"""

from __future__ import annotations

import asyncio
import math
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics", "multiprocess_dir"]


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "triage_requests", "Requests answered, by endpoint and outcome.", ["endpoint", "status"], registry=r
        )
        self.routes = Counter(
            "triage_routes", "Routing decisions, by category, model and reason.", ["category", "model", "reason"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "triage_upstream_errors", "Upstream failures, by model and error type.", ["model", "type"], registry=r
        )
        self.classify_seconds = Histogram(
            "triage_classify_seconds", "Time to classify a request.", ["classifier"], buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft_seconds = Histogram(
            "triage_time_to_first_token_seconds", "From request received to first token sent.", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.request_seconds = Histogram(
            "triage_request_seconds", "From request received to the answer's end.", ["endpoint"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens = Counter("triage_tokens", "Tokens, by model and kind.", ["model", "kind"], registry=r)
        self.cost_usd = Counter("triage_cost_usd", "Money spent upstream.", registry=r)
        self.baseline_cost_usd = Counter(
            "triage_baseline_cost_usd", "What the same tokens would have cost on the strongest model.", registry=r
        )
        self.speculation = Counter(
            "triage_speculation", "Speculative warm-ups, by outcome.", ["outcome"], registry=r
        )
        self.wasted_tokens = Counter(
            "triage_speculative_wasted_tokens", "Tokens spent on cancelled speculative streams.", ["kind"], registry=r
        )

        self.store_queue = Gauge(
            "triage_store_queue", "Decision records waiting to be written to the store.", registry=r,
            multiprocess_mode="livesum",
        )
        self.store_dropped = Counter(
            "triage_store_dropped", "Decision records the store could not keep (queue full, refused).", registry=r
        )
        self.redis_errors = Counter(
            "triage_redis_errors", "Redis operations that failed or timed out (the fallback served).", ["op"],
            registry=r,
        )
        self._dropped_seen = 0
        self._multiprocess = multiprocess_dir()
        # Leak checks (bench/soak.py) watch this return to its baseline once traffic stops.
        self.tasks = Gauge("triage_asyncio_tasks", "Live asyncio tasks on the serving loop.", registry=r,
                           multiprocess_mode="livesum")
        if self._multiprocess is None:
            self.tasks.set_function(_live_tasks)

    def sample(self, *, queued: int, dropped: int) -> None:
        """Gauges read off the process (the sampler calls this every second, and a scrape before it renders)."""
        self.store_queue.set(queued)
        if dropped > self._dropped_seen:
            self.store_dropped.inc(dropped - self._dropped_seen)
            self._dropped_seen = dropped
        if self._multiprocess is not None:
            self.tasks.set(_live_tasks())

    def render(self) -> bytes:
        if self._multiprocess is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self._multiprocess)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def _live_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # collected off the event loop (no running loop): unknown
        return math.nan
