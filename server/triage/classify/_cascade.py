"""The `cascade` classifier: rules, then the local layer, then (only when the local layer is unsure) the LLM layer.

    rules.match ── fires ──────────────────────────────▶ Decision(classifier="rules", confidence=1.0)
        │ abstains
    local.classify ── confidence ≥ its category's bar ─▶ Decision(classifier="local")
        │ unsure (or failed), and an LLM layer exists
    llm.classify ── answers ──────────────────────────▶ Decision(classifier="llm"), its own confidence: below
        │ fails or times out                              llm_threshold the policy sends it to the strongest model
        └──────────────────────────────────────────────▶ the local Decision (low confidence), the LLM's time added

An LLM answer is kept whatever its confidence, so that the policy sees how unsure it is: one below `llm_threshold`
belongs with the strongest model, so the policy must hold `classifier == "llm"` decisions to the LLM layer's
threshold, not the local one's (`is_sure` says which applies).

Every Decision carries one `LayerTiming` per layer asked, named "rules", "local" and "llm", and `latency_ms`, their
sum. `Decision.classifier` names the layer whose answer was kept.

Speculation pays only while an LLM layer is being waited for, so the cascade can be driven in two steps:

    decision = await cascade.classify_local(request)     # rules + local: about a millisecond
    if cascade.needs_llm(decision):                       # the LLM will be asked: start the cheap model now
        decision = await cascade.escalate(request, decision)

which is exactly what `classify` does in one call. `expected_llm_ms` estimates the second step.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import openai

from triage._config import TriageConfig
from triage._exceptions import ClassifierError, ConfigError
from triage.classify._decision import Classifier, ClassifyInput, Decision, LayerTiming
from triage.classify._rules import RulesClassifier

if TYPE_CHECKING:
    from triage.classify.local import CorrectionMemory

__all__ = ["CascadeClassifier", "build_classifier"]

logger = logging.getLogger("triage.classifier.cascade")


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class CascadeClassifier:
    """`rules` (optional) and `local` always run; `llm` (optional) runs when the local confidence is below
    `local_threshold`. `llm_threshold` is the confidence an LLM answer needs to count as sure (`is_sure`)."""

    name = "cascade"

    def __init__(
        self,
        rules: RulesClassifier | None,
        local: Classifier,
        llm: Classifier | None = None,
        *,
        local_threshold: float,
        local_thresholds: Mapping[str, float] | None = None,
        llm_threshold: float = 0.6,
        expected_llm_ms: float | None = None,
        default: str | None = None,
    ) -> None:
        self._rules = rules
        self._local = local
        self._llm = llm
        self.local_threshold = local_threshold
        # Per-category bars (the policy's): the same ones decide whether the LLM layer is asked.
        self.local_thresholds = dict(local_thresholds or {})
        self.llm_threshold = llm_threshold
        self._categories = tuple(local.categories)
        # The category of a Decision when the local layer failed; only its (zero) confidence matters downstream.
        self._default = default if default is not None else self._categories[0]
        estimate = expected_llm_ms if expected_llm_ms is not None else getattr(llm, "expected_ms", 0.0)
        self._expected_llm_ms = float(estimate) if llm is not None else 0.0

    @property
    def categories(self) -> Sequence[str]:
        return self._categories

    @property
    def expected_llm_ms(self) -> float:
        """The time the LLM layer is expected to add when it is asked; 0 without one."""
        return self._expected_llm_ms

    def needs_llm(self, decision: Decision) -> bool:
        """Whether `escalate` would ask the LLM about `decision` (a `classify_local` result)."""
        return self._llm is not None and decision.classifier != "rules" and decision.confidence < self._bar(decision)

    def is_sure(self, decision: Decision) -> bool:
        """Whether `decision` clears the threshold of the layer that made it (rules are always sure)."""
        if decision.classifier == "rules":
            return True
        threshold = self.llm_threshold if decision.classifier == "llm" else self._bar(decision)
        return decision.confidence >= threshold

    def _bar(self, decision: Decision) -> float:
        return self.local_thresholds.get(decision.category, self.local_threshold)

    async def classify(self, request: ClassifyInput) -> Decision:
        decision = await self.classify_local(request)
        if self.needs_llm(decision):
            decision = await self.escalate(request, decision)
        return decision

    async def classify_local(self, request: ClassifyInput) -> Decision:
        """The rules and local layers. Raises `ClassifierError` if the local layer fails and no LLM can stand in;
        with an LLM layer, a failed local layer gives a zero-confidence Decision (so `needs_llm` holds)."""
        started = time.perf_counter()
        layers: list[LayerTiming] = []
        if self._rules is not None:
            category = self._rules.match(request)
            layers.append(LayerTiming("rules", _ms_since(started)))
            if category is not None:
                scores = {c: (1.0 if c == category else 0.0) for c in self._categories}
                return Decision(category, 1.0, scores, "rules", _ms_since(started), tuple(layers))
        local_started = time.perf_counter()
        try:
            decision = await self._local.classify(request)
        except Exception as exc:  # whatever broke the local layer, the LLM may stand in
            layers.append(LayerTiming("local", _ms_since(local_started)))
            if self._llm is None:
                raise ClassifierError(f"the local classifier failed: {type(exc).__name__}") from exc
            logger.warning("local classifier failed (%s); asking the llm layer", type(exc).__name__)
            return Decision(self._default, 0.0, {}, "local", _ms_since(started), tuple(layers))
        layers.append(LayerTiming("local", _ms_since(local_started)))
        # Built directly: dataclasses.replace costs ~2 µs, a tenth of what the local layer itself takes.
        return Decision(decision.category, decision.confidence, decision.scores, "local", _ms_since(started),
                        tuple(layers))

    async def escalate(self, request: ClassifyInput, decision: Decision) -> Decision:
        """Ask the LLM layer about a request `classify_local` was unsure of. Its answer is kept whatever its
        confidence; if it fails or times out, `decision` is kept. Either way the LLM's time is recorded."""
        if self._llm is None:
            return decision
        started = time.perf_counter()
        try:
            answer = await self._llm.classify(request)
        except Exception as exc:  # ClassifierError above all, but no LLM failure may fail a request
            ms = _ms_since(started)
            logger.info("llm layer failed after %.0f ms (%s); keeping the local decision", ms, type(exc).__name__)
            layers = (*decision.layers, LayerTiming("llm", ms))
            return dataclasses.replace(decision, latency_ms=decision.latency_ms + ms, layers=layers)
        ms = _ms_since(started)
        layers = (*decision.layers, LayerTiming("llm", ms))
        return dataclasses.replace(answer, classifier="llm", latency_ms=decision.latency_ms + ms, layers=layers)


def build_classifier(
    config: TriageConfig,
    clients: Mapping[str, openai.AsyncOpenAI],
    *,
    local: Classifier | None = None,
    memory: CorrectionMemory | None = None,
) -> Classifier:
    """The classifier `config.classifier.kind` names. `clients` maps provider names to the pooled clients (the
    LLM layer shares its provider's pool); `local` overrides the local layer (tests, or a host's own model);
    `memory`: the reviewers' corrections the local layer consults first.

    - `rules`: the rules layer alone, the default category when no rule fires.
    - `local`: the local layer alone.
    - `cascade`: rules → local → (if `classifier.llm` is set) the LLM. The local layer's threshold is
      `classifier.threshold`, the one the policy uses, so a local answer not worth an LLM call without an LLM
      layer would go to the strongest model anyway.
    """
    cfg = config.classifier
    rules = RulesClassifier(config.categories, default=config.default_category)
    if cfg.kind == "rules":
        return rules
    local_layer = local if local is not None else _local_classifier(config, memory)
    if cfg.kind == "local":
        return local_layer
    llm_layer = None
    if cfg.llm is not None:
        # Imported here: instructor costs ~0.2 s at start-up, paid only by configurations with an LLM layer.
        from triage.classify._llm import LLMClassifier

        model = config.models[cfg.llm.model]
        if model.provider not in clients:
            raise ConfigError(f"classifier.llm.model: no client for provider {model.provider!r}")
        llm_layer = LLMClassifier(
            clients[model.provider],
            model.upstream_id,
            categories=config.categories,
            mode=cfg.llm.mode,
            timeout=cfg.llm.timeout,
            examples=cfg.llm.examples,
            descriptions={name: route.description for name, route in config.routes.items()},
            json_schema=config.providers[model.provider].json_schema,
            expected_ms=cfg.llm.expected_ms,
        )
    return CascadeClassifier(
        rules,
        local_layer,
        llm_layer,
        local_threshold=cfg.threshold,
        local_thresholds=cfg.thresholds,
        llm_threshold=cfg.llm.threshold if cfg.llm is not None else cfg.threshold,
        default=config.default_category,
    )


def _local_classifier(config: TriageConfig, memory: CorrectionMemory | None) -> Classifier:
    # Imported at build time only: the local layer loads numpy and an encoder, which a rules-only app never needs.
    from triage.classify.local import LocalClassifier

    return LocalClassifier.from_config(config, memory=memory)
