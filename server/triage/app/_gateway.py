"""The Gateway: everything a request needs that outlives the request (config, provider clients, classifier, store,
metrics), and the request-path steps both SSE dialects share: classify while speculating, plan, open the answer
(adopting or cancelling the speculation), account, record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from triage._config import TriageConfig
from triage._exceptions import NotFound
from triage._logging import request_id_var
from triage._types import ChatMessage
from triage.app._auth import Caller, KeyRing
from triage.app._drain import Drain
from triage.app._http import ClientGone
from triage.app._limits import Lease, RateLimiter, StreamSlots
from triage.app._metrics import Metrics
from triage.app._schemas import ChatCompletionRequest
from triage.app._shared import Sharing
from triage.app._tracing import Tracing
from triage.classify import (
    Classifier,
    ClassifyInput,
    Decision,
    LayerTiming,
    RulesClassifier,
    build_classifier,
    message_text,
)
from triage.classify.local import CorrectionMemory
from triage.learn import DecisionRecord, HeadReloader, RequestStatus, SpeculationOutcome, Store, make_reloader
from triage.route import Cost, RoutePlan, Usage, cost_of, estimate_tokens, plan_route
from triage.upstream import ModelStream, Speculation, StagedClassifier, Upstreams, worth_speculating

__all__ = ["Gateway", "Routed"]

logger = logging.getLogger("triage")

T = TypeVar("T", ModelStream, dict[str, Any])


@dataclass(slots=True)
class Routed:
    """One request's routing: ids and timing, the classifier's decision (None when the client forced a model), the
    plan, and what speculation did."""

    request_id: str
    received: float  # time.perf_counter() when the request arrived
    created_at: float  # unix time, for the record
    text: str  # what the classifier saw
    prompt_chars: int
    key_id: str | None = None
    decision: Decision | None = None
    plan: RoutePlan | None = None
    speculation: SpeculationOutcome = "off"
    wasted: Usage = field(default_factory=Usage)
    wasted_cost_usd: float = 0.0
    first_token_at: float | None = None

    @property
    def route(self) -> RoutePlan:
        assert self.plan is not None, "routed before planning"
        return self.plan

    def headers(self, model: str) -> dict[str, str]:
        headers = {
            "x-triage-request-id": self.request_id,
            "x-triage-model": model,
            "x-triage-reason": self.route.reason,
            "x-triage-speculation": self.speculation,
        }
        if self.route.category is not None:
            headers["x-triage-category"] = self.route.category
        if self.decision is not None:
            headers["x-triage-confidence"] = f"{self.decision.confidence:.4f}"
        return headers

    def route_event(self, model: str) -> dict[str, Any]:
        """The UI stream's `route` event."""
        decision = self.decision
        return {
            "request_id": self.request_id,
            "category": self.route.category,
            "confidence": decision.confidence if decision else None,
            "scores": dict(decision.scores) if decision else {},
            "model": model,
            "planned_model": self.route.primary,
            "reason": self.route.reason,
            "classifier": decision.classifier if decision else None,
            "classify_ms": round(decision.latency_ms, 3) if decision else None,
            "layers": {t.layer: round(t.ms, 3) for t in decision.layers} if decision else {},
            "speculation": self.speculation,
        }


class Gateway:
    def __init__(self, config: TriageConfig, *, classifier: Classifier | None = None, store: Store | None = None):
        self.config = config
        self.metrics = Metrics()
        self.upstreams = Upstreams(config)
        self.keys = KeyRing(config.auth)
        self.limiter = RateLimiter()
        self.slots = StreamSlots(config.server.max_streams)
        # Redis-backed limits and cooldowns when configured (else the two above, alone), and the metrics sampler.
        self.sharing = Sharing(config, self.metrics, self.limiter, self.slots, self.upstreams.health)
        self.tracing = Tracing.from_env()  # None unless OTEL_* variables ask for traces
        # sse-starlette waits `shutdown_grace` before it cancels a response; answers end a little earlier, so the
        # client gets an explicit error event rather than a silent cut.
        self.drain = Drain(max(0.0, config.server.shutdown_grace - 0.5))
        self.classifier = classifier or RulesClassifier(config.categories, default=config.default_category)
        # Without one given, the configured classifier is built at start: its LLM layer shares the pooled clients.
        self._own_classifier = classifier is None
        self.store = store
        # Set by the app when the classifier has a head that retraining can replace (see _heads.HeadReloader).
        self.heads: HeadReloader | None = None
        # Reviewers' corrections, which the configured local classifier consults before its head: a correction acts
        # on near-duplicates at once, before any retrain (every head version shares this one memory).
        cfg = config.classifier
        self.memory = CorrectionMemory(similarity=cfg.memory_similarity, size=cfg.memory_size)
        self._started = False
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._start_lock:
            if not self._started:
                try:
                    await self._start()
                except BaseException:
                    await self._stop()  # what did start is closed again: a failed start leaves nothing running
                    raise
                self._started = True

    async def _start(self) -> None:
        await self.upstreams.start()
        if self._own_classifier:
            # Loading a head reads files and fills arrays: off the event loop.
            self.classifier = await asyncio.to_thread(
                build_classifier, self.config, self.upstreams.clients, memory=self.memory
            )
            if self.heads is None:  # None when classifier.kind is rules
                self.heads = make_reloader(
                    self.config, self.upstreams.clients, self.swap_classifier, memory=self.memory
                )
        if self.store is not None:
            await self.store.start()
            await self._recall_corrections(self.store)
        if self.heads is not None:
            await self.heads.start()
        await self.sharing.start(self.store)
        self.drain.start()

    async def stop(self) -> None:
        async with self._start_lock:
            if self._started:
                await self._stop()
                self._started = False

    async def _stop(self) -> None:
        if self.heads is not None:
            await self.heads.stop()
        await self.drain.stop()
        await self.sharing.stop()
        await self.upstreams.aclose()
        if self.store is not None:
            await self.store.stop()  # flushes every queued record
        if self.tracing is not None:
            self.tracing.shutdown()

    async def admit(self, caller: Caller) -> Lease:
        """A model request's rate limit and concurrency slot (shared through Redis when configured)."""
        return await self.sharing.admit(caller)

    async def _recall_corrections(self, store: Store) -> None:
        """Fill the correction memory from the store's corrections (their texts embedded off the event loop)."""
        if self.config.classifier.memory_size <= 0 or self.config.classifier.kind == "rules":
            return
        examples = await store.labeled_texts()

        def fill() -> None:
            for example in examples[-self.config.classifier.memory_size :]:
                self.memory.remember(example.request_id, example.text, example.category)

        await asyncio.to_thread(fill)

    def remember(self, request_id: str, text: str | None, category: str) -> None:
        """A reviewer's correction, into the memory the local classifier consults (a request without its text,
        under `store.text: none`, cannot be recalled)."""
        if text:
            self.memory.remember(request_id, text, category)

    async def ensure_started(self) -> None:
        """Apps served without lifespan events (some test transports, some hosts) start on first use."""
        if not self._started:
            await self.start()

    @property
    def classifier(self) -> Classifier:
        return self._classifier

    @classifier.setter
    def classifier(self, classifier: Classifier) -> None:
        self._classifier = classifier
        # A runtime protocol check looks up every member (~10 us): once per classifier, not once per request.
        self._staged: StagedClassifier | None = classifier if isinstance(classifier, StagedClassifier) else None

    def swap_classifier(self, classifier: Classifier) -> None:
        """Install a new classifier (a retrained head). Requests in flight keep the one they started with."""
        self.classifier = classifier

    # -- routing --------------------------------------------------------------------------------------------

    def begin(
        self, chat: ChatCompletionRequest, messages: Sequence[ChatMessage], key_id: str | None
    ) -> tuple[Routed, ClassifyInput]:
        """A request's routing record and what its classifier sees. `messages`: the body's messages as sent (`chat`
        validated them), read as they are: dumping the validated models again cost ~0.1 ms of time to first token."""
        inputs = ClassifyInput.from_messages(
            messages, has_tools=bool(chat.tools), context_turns=self.config.classifier.context_turns
        )
        prompt_chars = sum(len(message_text(m)) for m in messages)
        # 128 random bits, as uuid4's hex; without building the UUID object (~60 us on a cold c=1 request path).
        request_id = "req_" + secrets.token_hex(16)
        routed = Routed(request_id, time.perf_counter(), time.time(), inputs.text, prompt_chars, key_id)
        request_id_var.set(routed.request_id)  # in this request's log lines (`server.log_format: json`)
        return routed, inputs

    async def open_stream(self, chat: ChatCompletionRequest, body: dict[str, Any], routed: Routed,
                          inputs: ClassifyInput) -> ModelStream:
        """Route the request and return the answering model's live stream, past its first token."""
        return await self._route_and_open(
            chat, routed, inputs,
            one=lambda model: self.upstreams.open_stream(model, body),
            chain=lambda models: self.upstreams.stream_chain(models, body),
        )

    async def open_completion(self, chat: ChatCompletionRequest, body: dict[str, Any], routed: Routed,
                              inputs: ClassifyInput) -> dict[str, Any]:
        return await self._route_and_open(
            chat, routed, inputs,
            one=lambda model: self.upstreams.complete(model, body),
            chain=lambda models: self.upstreams.complete_chain(models, body),
        )

    async def _route_and_open(
        self,
        chat: ChatCompletionRequest,
        routed: Routed,
        inputs: ClassifyInput,
        *,
        one: Callable[[str], Awaitable[T]],
        chain: Callable[[Sequence[str]], Awaitable[T]],
    ) -> T:
        if chat.model != self.config.router_name:
            if chat.model not in self.config.models:
                raise NotFound(
                    f"unknown model {chat.model!r}: use {self.config.router_name!r} or one of GET /v1/models",
                    param="model", code="model_not_found",
                )
            routed.plan = plan_route(None, self.config, forced_model=chat.model)
            return self._opened(routed, await chain(routed.plan.models))
        speculation: Speculation[T] | None = None
        mode = self.config.speculation.mode
        spec_model = self.config.speculative_model
        can_speculate = mode != "never" and all(
            need in self.config.models[spec_model].capabilities for need in chat.needs()
        )

        def speculate() -> None:
            nonlocal speculation
            speculation = Speculation(spec_model, lambda: one(spec_model), prompt_chars=routed.prompt_chars)

        try:
            if can_speculate and mode == "always":
                speculate()
            routed.decision = await self._classify(
                inputs, before_slow_layer=speculate if can_speculate and mode == "auto" else None,
                prompt_tokens=estimate_tokens(routed.prompt_chars),
            )
            routed.plan = plan_route(routed.decision, self.config, needs=chat.needs())
            if speculation is None:
                return self._opened(routed, await chain(routed.plan.models))
            if routed.plan.primary == speculation.model:
                adopted = await speculation.adopt()
                speculation = None
                if adopted is not None:
                    routed.speculation = "hit"
                    self.metrics.speculation.labels("hit").inc()
                    return self._opened(routed, adopted)
                routed.speculation = "miss"  # it failed: the normal path, silently
                self.metrics.speculation.labels("failed").inc()
                return self._opened(routed, await chain(routed.plan.models))
            self._record_waste(routed, await speculation.cancel())
            speculation = None
            return self._opened(routed, await chain(routed.plan.models))
        finally:
            if speculation is not None:  # the client left, or classification or planning failed
                self._record_waste(routed, await asyncio.shield(speculation.cancel()))

    @staticmethod
    def _opened(routed: Routed, result: T) -> T:
        """Note when the answering model's first token arrived (for the record's TTFT)."""
        routed.first_token_at = time.perf_counter()
        return result

    def _record_waste(self, routed: Routed, wasted: Usage) -> None:
        models = self.config.models
        model = self.config.speculative_model
        routed.speculation = "miss"
        routed.wasted = wasted
        routed.wasted_cost_usd = cost_of(wasted, models[model], models[model]).cost_usd
        self.metrics.speculation.labels("miss").inc()
        self.metrics.wasted_tokens.labels("prompt").inc(wasted.prompt_tokens)
        self.metrics.wasted_tokens.labels("completion").inc(wasted.completion_tokens)
        self.metrics.cost_usd.inc(routed.wasted_cost_usd)

    async def _classify(
        self, inputs: ClassifyInput, *, before_slow_layer: Callable[[], None] | None, prompt_tokens: int
    ) -> Decision:
        classifier, staged = self._classifier, self._staged  # `staged`: the classifier, if it is a StagedClassifier
        started = time.perf_counter()
        try:
            if staged is not None:
                decision = await staged.classify_local(inputs)
                if staged.needs_llm(decision):
                    spec_model = self.config.speculative_model
                    if before_slow_layer is not None and worth_speculating(
                        self.config.speculation, expected_classify_ms=staged.expected_llm_ms,
                        cheap_ttft_ms=self.upstreams.health.ttft_estimate_ms(spec_model), prompt_tokens=prompt_tokens,
                    ):
                        before_slow_layer()
                    decision = await staged.escalate(inputs, decision)
            else:
                decision = await classifier.classify(inputs)
        except Exception:
            # A broken classifier must not fail the request: zero confidence sends it to the strongest model.
            logger.exception("classifier %s failed; falling back", classifier.name)
            ms = (time.perf_counter() - started) * 1000
            decision = Decision(
                self.config.default_category, 0.0, {}, "fallback", ms, (LayerTiming(classifier.name, ms),)
            )
        return decision

    # -- accounting -----------------------------------------------------------------------------------------

    def settle(self, routed: Routed, model: str | None, usage: Usage, status: RequestStatus, endpoint: str) -> Cost:
        """Account for one answer (metrics, and a decision record for the store). Runs once per request."""
        models = self.config.models
        strongest = models[self.config.strongest_model]
        cost = cost_of(usage, models[model], strongest) if model is not None else Cost(0.0, 0.0)
        m = self.metrics
        if model is not None:
            m.tokens.labels(model, "prompt").inc(usage.prompt_tokens)
            m.tokens.labels(model, "completion").inc(usage.completion_tokens)
            m.cost_usd.inc(cost.cost_usd)
            m.baseline_cost_usd.inc(cost.baseline_cost_usd)
            m.routes.labels(routed.route.category or "", model, routed.route.reason).inc()
        if routed.decision is not None:  # observed here, off the way to the first token
            m.classify_seconds.labels(routed.decision.classifier).observe(routed.decision.latency_ms / 1000)
        now = time.perf_counter()
        m.requests.labels(endpoint, status).inc()
        m.request_seconds.labels(endpoint).observe(now - routed.received)
        if self.store is not None:
            self.store.submit(self._record(routed, model, usage, cost, status, endpoint, now))
        if self.tracing is not None:
            self.tracing.record(routed, model, usage, status, endpoint, self.config)
        return cost

    def _record(self, routed: Routed, model: str | None, usage: Usage, cost: Cost, status: RequestStatus,
                endpoint: str, now: float) -> DecisionRecord:
        decision = routed.decision
        keep_text = self.config.store.text == "full"
        return DecisionRecord(
            request_id=routed.request_id,
            created_at=routed.created_at,
            endpoint=endpoint,
            key_id=routed.key_id,
            category=routed.route.category,
            confidence=decision.confidence if decision else None,
            scores=dict(decision.scores) if decision else {},
            classifier=decision.classifier if decision else None,
            model=model,
            reason=routed.route.reason,
            speculation=routed.speculation,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=cost.cost_usd,
            baseline_cost_usd=cost.baseline_cost_usd,
            wasted_prompt_tokens=routed.wasted.prompt_tokens,
            wasted_completion_tokens=routed.wasted.completion_tokens,
            wasted_cost_usd=routed.wasted_cost_usd,
            classify_ms=decision.latency_ms if decision else None,
            ttft_ms=(routed.first_token_at - routed.received) * 1000 if routed.first_token_at else None,
            total_ms=(now - routed.received) * 1000,
            status=status,
            text=routed.text if keep_text else None,
            layers={t.layer: t.ms for t in decision.layers} if decision else {},
        )

    @contextlib.contextmanager
    def failing(self, routed: Routed, endpoint: str) -> Iterator[None]:
        """Records a request that fails before any model answered (all models failed, the client left)."""
        try:
            yield
        except BaseException as exc:
            if routed.plan is not None:
                gone = isinstance(exc, (asyncio.CancelledError, ClientGone))
                status: RequestStatus = "cancelled" if gone else "upstream_error"
                self.settle(routed, None, Usage(), status, endpoint)
            raise
