"""The store's interface: decision records (written off the request path) and human corrections (written at once).

`Store` is a Protocol so a server database (`triage.learn._postgres`, selected by `store.url`) can stand in for the
SQLite default (`triage.learn._sqlite`). The contract every implementation keeps:

- `submit(record)` never blocks and never raises: the record goes to a bounded queue; when the queue is full the
  record is dropped and `dropped` counts it. A background writer flushes the queue in batches.
- `add_correction(...)` is durable when it returns, and finds a decision that is still queued (it flushes first).
- Request text is kept only under `store.text: full`, and only for `store.retention_days`: `purge()` then clears
  the text of older decisions and the notes of their corrections. The numbers (tokens, cost, route) stay, so
  the statistics keep their history; what cannot be retrained on any more is the text.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from triage.learn._records import DecisionRecord

__all__ = ["BUCKET_SECONDS", "Bucket", "Correction", "LabeledText", "Stats", "StatsBucket", "Store"]

Bucket = Literal["hour", "day"]
BUCKET_SECONDS: Mapping[Bucket, int] = {"hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class Correction:
    """A reviewer's verdict on one request's route. `router_category` is what the router chose (None: forced)."""

    id: int
    request_id: str
    category: str
    router_category: str | None
    note: str | None
    key_id: str | None
    created_at: float

    def to_dict(self) -> dict[str, object]:
        return {
            "object": "triage.correction",
            "id": self.id,
            "request_id": self.request_id,
            "category": self.category,
            "router_category": self.router_category,
            "agrees": self.category == self.router_category,
            "note": self.note,
            "key_id": self.key_id,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class LabeledText:
    """A training example from the store: a request's text and the category a reviewer gave it."""

    request_id: str
    text: str
    category: str
    router_category: str | None
    created_at: float


@dataclass(slots=True)
class StatsBucket:
    """Aggregates over the decisions made in [start, start + bucket). Corrections count with their decision's
    bucket (when the router decided, not when the reviewer looked), so agreement reads as the router's accuracy
    at that time. Only a request's latest correction counts."""

    start: float
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)  # "forced" when the client named a model
    models: Counter[str] = field(default_factory=Counter)
    speculation: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    wasted_prompt_tokens: int = 0
    wasted_completion_tokens: int = 0
    wasted_cost_usd: float = 0.0
    corrections: int = 0
    judged: int = 0  # corrections of routed requests (a forced request has no router verdict to agree with)
    agreed: int = 0

    @property
    def saved_usd(self) -> float:
        # As DecisionRecord.saved_usd: what the all-strong baseline would have cost, less what was spent,
        # including the tokens thrown away by cancelled speculative streams.
        return self.baseline_cost_usd - self.cost_usd - self.wasted_cost_usd

    def merge(self, other: StatsBucket) -> None:
        self.requests += other.requests
        self.statuses.update(other.statuses)
        self.categories.update(other.categories)
        self.models.update(other.models)
        self.speculation.update(other.speculation)
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.baseline_cost_usd += other.baseline_cost_usd
        self.wasted_prompt_tokens += other.wasted_prompt_tokens
        self.wasted_completion_tokens += other.wasted_completion_tokens
        self.wasted_cost_usd += other.wasted_cost_usd
        self.corrections += other.corrections
        self.judged += other.judged
        self.agreed += other.agreed

    def to_dict(self) -> dict[str, object]:
        return {
            "start": self.start,
            "requests": self.requests,
            "statuses": dict(self.statuses),
            "categories": dict(self.categories),
            "models": dict(self.models),
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "cost_usd": self.cost_usd,
            "baseline_cost_usd": self.baseline_cost_usd,
            "saved_usd": self.saved_usd,
            "savings_ratio": self.saved_usd / self.baseline_cost_usd if self.baseline_cost_usd > 0 else None,
            "speculation": {
                **{outcome: self.speculation.get(outcome, 0) for outcome in ("hit", "miss", "off")},
                "wasted_prompt_tokens": self.wasted_prompt_tokens,
                "wasted_completion_tokens": self.wasted_completion_tokens,
                "wasted_cost_usd": self.wasted_cost_usd,
            },
            "corrections": self.corrections,
            "agreement": self.agreed / self.judged if self.judged else None,
        }


@dataclass(slots=True)
class Stats:
    bucket: Bucket
    since: float
    until: float
    buckets: list[StatsBucket]

    @property
    def totals(self) -> StatsBucket:
        total = StatsBucket(self.since)
        for b in self.buckets:
            total.merge(b)
        return total

    def to_dict(self) -> dict[str, object]:
        return {
            "object": "triage.stats",
            "bucket": self.bucket,
            "since": self.since,
            "until": self.until,
            "buckets": [b.to_dict() for b in self.buckets],
            "totals": self.totals.to_dict(),
        }


def bucket_start(t: float, bucket: Bucket) -> float:
    """The start of `t`'s bucket, in UTC (days start at 00:00 UTC)."""
    size = BUCKET_SECONDS[bucket]
    return float(math.floor(t / size) * size)


@runtime_checkable
class Store(Protocol):
    @property
    def dropped(self) -> int:
        """Records lost: submitted to a full queue, after `stop()`, or in a batch the database refused."""
        ...

    @property
    def queued(self) -> int:
        """Records submitted and not yet written."""
        ...

    async def start(self) -> None:
        """Open the database, purge expired text, start the writer. Idempotent."""
        ...

    async def stop(self) -> None:
        """Write everything queued, then close."""
        ...

    def submit(self, record: DecisionRecord) -> None:
        """Queue `record` for writing. Never blocks, never raises."""
        ...

    async def flush(self) -> None:
        """Wait until every record submitted before this call is written (or counted as dropped)."""
        ...

    async def get_decision(self, request_id: str) -> DecisionRecord | None: ...

    async def add_correction(
        self, request_id: str, category: str, *, note: str | None = None, key_id: str | None = None
    ) -> Correction:
        """Store a correction durably. Raises NotFound when no decision has `request_id`."""
        ...

    def iter_decisions(
        self, *, since: float | None = None, until: float | None = None
    ) -> AsyncIterator[DecisionRecord]:
        """Decisions in creation order, read in pages."""
        ...

    async def corrections(self, *, since: float | None = None) -> list[Correction]: ...

    async def labeled_texts(self) -> list[LabeledText]:
        """Each corrected request that still has its text, with its latest correction: the retraining data."""
        ...

    async def stats(self, *, bucket: Bucket, since: float, until: float) -> Stats: ...

    async def purge(self, *, now: float | None = None) -> int:
        """Clear text older than the retention period; return how many decisions lost their text."""
        ...
