"""Token usage and money: what a request cost, what it would have cost on the strongest model, what was saved."""

from __future__ import annotations

from dataclasses import dataclass

from triage._config import ModelConfig

__all__ = ["Cost", "Usage", "cost_of", "estimate_tokens"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # True when the provider reported no usage and the counts are estimates from text length.
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.estimated or other.estimated,
        )


@dataclass(frozen=True, slots=True)
class Cost:
    cost_usd: float
    baseline_cost_usd: float

    @property
    def saved_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd


def cost_of(usage: Usage, model: ModelConfig, baseline: ModelConfig) -> Cost:
    """Cost of `usage` on `model`, and of the same tokens on `baseline` (the all-strong counterfactual)."""

    def price(m: ModelConfig) -> float:
        return (usage.prompt_tokens * m.input_per_mtok + usage.completion_tokens * m.output_per_mtok) / 1_000_000

    return Cost(price(model), price(baseline))


def estimate_tokens(chars: int) -> int:
    """About four characters a token for English text: only for providers that report no usage."""
    return (chars + 3) // 4
