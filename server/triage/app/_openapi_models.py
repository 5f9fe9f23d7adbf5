"""The response models of Triage's OpenAPI document: each mirrors a `to_dict()` or an event payload written
elsewhere, and forbids extra fields, so that a field added to a response without being added here fails
tests/test_schemathesis.py instead of going undocumented."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

__all__ = [
    "UI_EVENTS",
    "Correction",
    "DeltaEvent",
    "DoneEvent",
    "ErrorDetail",
    "ErrorResponse",
    "HeadReload",
    "Health",
    "ModelCard",
    "ModelList",
    "PatchEvent",
    "RouteEvent",
    "StatsBucket",
    "StatsReport",
    "StatsSpeculation",
    "StatsTokens",
    "StreamError",
    "ToolCallEvent",
    "UsageEvent",
]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Closed):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(_Closed):
    """Every error Triage answers with, in OpenAI's shape."""

    error: ErrorDetail


class ModelCard(_Closed):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Closed):
    object: Literal["list"]
    data: list[ModelCard]


class Health(_Closed):
    status: Literal["ok"]


class Correction(_Closed):
    object: Literal["triage.correction"]
    id: int
    request_id: str
    category: str
    router_category: str | None
    agrees: bool
    note: str | None
    key_id: str | None
    created_at: float


class StatsTokens(_Closed):
    prompt: int
    completion: int


class StatsSpeculation(_Closed):
    hit: int
    miss: int
    off: int
    wasted_prompt_tokens: int
    wasted_completion_tokens: int
    wasted_cost_usd: float


class StatsBucket(_Closed):
    start: float
    requests: int
    statuses: dict[str, int]
    categories: dict[str, int]
    models: dict[str, int]
    tokens: StatsTokens
    cost_usd: float
    baseline_cost_usd: float
    saved_usd: float
    savings_ratio: float | None
    speculation: StatsSpeculation
    corrections: int
    agreement: float | None


class StatsReport(_Closed):
    object: Literal["triage.stats"]
    bucket: Literal["hour", "day"]
    since: float
    until: float
    buckets: list[StatsBucket]
    totals: StatsBucket
    dropped: int


class HeadReload(_Closed):
    object: Literal["triage.head"]
    version: str
    previous: str | None
    reloaded: bool


class RouteEvent(_Closed):
    request_id: str
    category: str | None
    confidence: float | None
    scores: dict[str, float]
    model: str
    planned_model: str
    reason: Literal["confident", "low_confidence", "rule", "forced"]
    classifier: str | None
    classify_ms: float | None
    layers: dict[str, float]
    speculation: Literal["hit", "miss", "off"]


class DeltaEvent(_Closed):
    text: str


# One item of a `patch` event: an append (a string), N dones (a positive integer), a push [V] or a member [K, V].
_WireAdd = Annotated[list[Any], Field(min_length=1, max_length=2, description="[value]: push onto the open array; "
                                      "[key, value]: set a member of the open object")]
_Dones = Annotated[int, Field(ge=1, description="N: the N innermost open values are done")]
_WireItem = Annotated[
    str | _Dones | _WireAdd,
    Field(description="a string: append to the open string; a positive integer N: the N innermost open values "
                      "are done; [value] or [key, value]: an add"),
]


class PatchEvent(RootModel[str | _Dones | list[_WireItem]]):
    """The structured-output patches of one upstream read, in the compact encoding of
    triage.stream.structured._wire (decoded, they are the field patches of triage.stream.structured._patch): a
    string (an append to the open string), a positive integer (dones), or an array: a batch of items applied in
    order. Example: `[["title","Te"]]`, then `"a"`, then `[1,["steps",[]],["Boil"],1,2]`."""


class ToolCallEvent(_Closed):
    index: int
    id: str | None
    name: str | None
    arguments: str


class UsageEvent(_Closed):
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    cost_usd: float
    baseline_cost_usd: float
    saved_usd: float
    wasted_speculative_tokens: int
    wasted_cost_usd: float


class StreamError(_Closed):
    """The last event of a stream that failed after its first token; `path` names a structured-output field."""

    type: str
    message: str
    retryable: bool
    path: str | None = None


class DoneEvent(_Closed):
    finish_reason: str | None


UI_EVENTS: dict[str, type[BaseModel]] = {
    "route": RouteEvent,
    "delta": DeltaEvent,
    "patch": PatchEvent,
    "tool_call": ToolCallEvent,
    "usage": UsageEvent,
    "error": StreamError,
    "done": DoneEvent,
}
