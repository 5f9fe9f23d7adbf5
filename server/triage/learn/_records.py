"""The decision record: one row per answered (or failed) request, written to the store off the request path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DecisionRecord", "RequestStatus", "SpeculationOutcome"]

SpeculationOutcome = Literal["hit", "miss", "off"]
# ok: answered in full; upstream_error: failed (before or after the first token); cancelled: the client left.
RequestStatus = Literal["ok", "upstream_error", "cancelled"]


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    request_id: str
    created_at: float  # unix seconds
    endpoint: str  # "chat.completions" | "triage.chat"
    key_id: str | None  # the client key's id, never the key
    category: str | None  # None when the client forced a model
    confidence: float | None
    scores: Mapping[str, float]
    classifier: str | None  # the layer that decided: rules | local | llm | fallback
    model: str | None  # the model that answered; None if none did
    reason: str  # confident | low_confidence | rule | forced
    speculation: SpeculationOutcome
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    baseline_cost_usd: float  # the same tokens on the strongest model
    wasted_prompt_tokens: int  # spent on a cancelled speculative stream
    wasted_completion_tokens: int
    wasted_cost_usd: float
    classify_ms: float | None
    ttft_ms: float | None
    total_ms: float
    status: RequestStatus
    # What the classifier saw (last user turn and prior turns), kept for retraining under `store.text: full`.
    text: str | None = None
    layers: Mapping[str, float] = field(default_factory=dict)  # ms per classifier layer asked

    @property
    def saved_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd - self.wasted_cost_usd
