"""Routing policy: a pure function from a Decision and the request's needs to a RoutePlan. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from triage._config import TriageConfig
from triage.classify import Decision

__all__ = ["RoutePlan", "RouteReason", "plan_route"]

RouteReason = Literal["confident", "low_confidence", "rule", "forced"]


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Which models to try, in order, and why. `category` is None when the client named a model itself."""

    category: str | None
    models: tuple[str, ...]
    reason: RouteReason

    @property
    def primary(self) -> str:
        return self.models[0]


def plan_route(
    decision: Decision | None,
    config: TriageConfig,
    *,
    needs: Sequence[str] = (),
    forced_model: str | None = None,
) -> RoutePlan:
    """The plan for one request.

    - `forced_model`: the client named a configured model; routing is bypassed.
    - confidence below the category's bar (`classifier.thresholds`, else `classifier.threshold`; an LLM answer is
      held to the LLM layer's own): the strongest model first, then the category's chain.
    - `needs` (capabilities such as "tools" or "json" the request depends on): models lacking one are dropped;
      if none is left, the cheapest capable models stand in, so a tool call never goes to a model without tools.
    """
    if forced_model is not None:
        return RoutePlan(None, (forced_model,), "forced")
    if decision is None:
        raise ValueError("plan_route needs a decision unless a model is forced")
    chain = list(config.routes[decision.category].models)
    threshold = config.classifier.threshold_for(decision.category)
    if decision.classifier == "llm" and config.classifier.llm is not None:
        threshold = config.classifier.llm.threshold  # an LLM answer is held to the LLM layer's own bar
    if decision.confidence < threshold:
        strongest = config.strongest_model
        chain = [strongest, *(m for m in chain if m != strongest)]
        reason: RouteReason = "low_confidence"
    elif decision.classifier == "rules":
        reason = "rule"
    else:
        reason = "confident"
    capable = [m for m in chain if _has_all(config, m, needs)]
    if not capable:
        capable = sorted(
            (m for m in config.models if _has_all(config, m, needs)),
            key=lambda m: (config.models[m].input_per_mtok + config.models[m].output_per_mtok, m),
        )
    # With no capable model at all, send the chain as it is and let the provider decide.
    return RoutePlan(decision.category, tuple(capable or chain), reason)


def _has_all(config: TriageConfig, model: str, needs: Sequence[str]) -> bool:
    return all(need in config.models[model].capabilities for need in needs)
