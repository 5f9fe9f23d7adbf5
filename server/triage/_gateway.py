"""The Gateway: everything a request needs that outlives the request (config, provider clients, classifier,
metrics), and the request-path steps both SSE dialects share: route, then account."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletionChunk

from ._accounting import Cost, Usage, cost_of, estimate_tokens
from ._auth import KeyRing
from ._classifier import Classifier, ClassifyInput, Decision, LayerTiming, RulesClassifier
from ._config import TriageConfig
from ._exceptions import NotFound
from ._limits import RateLimiter, StreamSlots
from ._metrics import Metrics
from ._policy import RoutePlan, plan_route
from ._schemas import ChatCompletionRequest
from ._upstream import Upstreams

__all__ = ["Gateway", "Routed", "StreamTally"]

logger = logging.getLogger("triage")


@dataclass(slots=True)
class Routed:
    """One request's routing: its id, the classifier's decision (None when the client forced a model), the plan."""

    request_id: str
    decision: Decision | None
    plan: RoutePlan
    received: float  # time.perf_counter() when the request arrived

    def headers(self, model: str) -> dict[str, str]:
        headers = {"x-triage-request-id": self.request_id, "x-triage-model": model,
                   "x-triage-reason": self.plan.reason}
        if self.plan.category is not None:
            headers["x-triage-category"] = self.plan.category
        if self.decision is not None:
            headers["x-triage-confidence"] = f"{self.decision.confidence:.4f}"
        return headers

    def route_event(self, model: str) -> dict[str, Any]:
        """The UI stream's `route` event."""
        decision = self.decision
        return {
            "request_id": self.request_id,
            "category": self.plan.category,
            "confidence": decision.confidence if decision else None,
            "scores": dict(decision.scores) if decision else {},
            "model": model,
            "planned_model": self.plan.primary,
            "reason": self.plan.reason,
            "classifier": decision.classifier if decision else None,
            "classify_ms": round(decision.latency_ms, 3) if decision else None,
            "layers": {t.layer: round(t.ms, 3) for t in decision.layers} if decision else {},
            "speculation": "off",
        }


@dataclass(slots=True)
class StreamTally:
    """What passes through a stream that accounting needs: usage (reported or estimated) and timing."""

    usage: Usage | None = None
    completion_chars: int = 0
    finish_reason: str | None = None
    chunks: int = field(default=0)

    def observe(self, chunk: ChatCompletionChunk) -> None:
        self.chunks += 1
        if chunk.usage is not None:
            self.usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                self.completion_chars += len(delta.content)
            for call in delta.tool_calls or ():
                if call.function is not None and call.function.arguments:
                    self.completion_chars += len(call.function.arguments)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason

    def final_usage(self, prompt_chars: int) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(estimate_tokens(prompt_chars), estimate_tokens(self.completion_chars), estimated=True)


class Gateway:
    def __init__(self, config: TriageConfig, *, classifier: Classifier | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.upstreams = Upstreams(config)
        self.keys = KeyRing(config.auth)
        self.limiter = RateLimiter()
        self.slots = StreamSlots(config.server.max_streams)
        self.classifier: Classifier = classifier or RulesClassifier(config.categories, default=config.default_category)
        self._started = False
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._start_lock:
            if not self._started:
                await self.upstreams.start()
                self._started = True

    async def stop(self) -> None:
        async with self._start_lock:
            if self._started:
                await self.upstreams.aclose()
                self._started = False

    async def ensure_started(self) -> None:
        """Apps served without lifespan events (some test transports, some hosts) start on first use."""
        if not self._started:
            await self.start()

    # -- routing --------------------------------------------------------------------------------------------

    async def route(self, request: ChatCompletionRequest) -> Routed:
        received = time.perf_counter()
        request_id = f"req_{uuid.uuid4().hex}"
        if request.model != self.config.router_name:
            if request.model not in self.config.models:
                raise NotFound(
                    f"unknown model {request.model!r}: use {self.config.router_name!r} or one of GET /v1/models",
                    param="model", code="model_not_found",
                )
            return Routed(request_id, None, plan_route(None, self.config, forced_model=request.model), received)
        decision = await self.classify(request)
        plan = plan_route(decision, self.config, needs=request.needs())
        return Routed(request_id, decision, plan, received)

    async def classify(self, request: ChatCompletionRequest) -> Decision:
        messages = [m.model_dump() for m in request.messages]
        inputs = ClassifyInput.from_messages(
            messages, has_tools=bool(request.tools), context_turns=self.config.classifier.context_turns
        )
        started = time.perf_counter()
        try:
            decision = await self.classifier.classify(inputs)
        except Exception:
            # A broken classifier must not fail the request: zero confidence sends it to the strongest model.
            logger.exception("classifier %s failed; falling back", self.classifier.name)
            ms = (time.perf_counter() - started) * 1000
            decision = Decision(
                self.config.default_category, 0.0, {}, "fallback", ms, (LayerTiming(self.classifier.name, ms),)
            )
        self.metrics.classify_seconds.labels(decision.classifier).observe(decision.latency_ms / 1000)
        return decision

    # -- accounting -----------------------------------------------------------------------------------------

    def account(self, routed: Routed, model: str, usage: Usage) -> Cost:
        models = self.config.models
        cost = cost_of(usage, models[model], models[self.config.strongest_model])
        m = self.metrics
        m.tokens.labels(model, "prompt").inc(usage.prompt_tokens)
        m.tokens.labels(model, "completion").inc(usage.completion_tokens)
        m.cost_usd.inc(cost.cost_usd)
        m.baseline_cost_usd.inc(cost.baseline_cost_usd)
        m.routes.labels(routed.plan.category or "", model, routed.plan.reason).inc()
        return cost
