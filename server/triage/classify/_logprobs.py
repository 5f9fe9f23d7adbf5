"""Category probabilities from the token logprobs of a structured answer.

An LLM classifier answers `{"category": "reasoning"}`, as text (JSON-schema mode) or as tool-call arguments (TOOLS
mode, where a provider returns logprobs for them at all). Tokens do not follow JSON: `": "reason` and `ing"}` are
typical. So the answer's tokens are joined, the category's value is located by character offset, and:

- the chosen category's probability is the product of the probabilities of every token overlapping its value
  *and its closing quote* (the closing quote is where "code" parts from "code_review");
- at the token where the value starts, each alternative in `top_logprobs` that spells the start of another
  category (after the same text the chosen token had before the value) adds its probability to that category;
  an alternative that could start several categories shares its probability evenly among them;
- what the top alternatives leave unaccounted for is shared evenly by the categories they did not name; when
  they named every category, the rest (tokens spelling no category) is left out, so scores sum to less than 1.
  Renormalising over the categories would turn a model that barely prefers one category into a sure one.

Pure functions, no I/O. `None` means "cannot tell": the caller falls back to a fixed confidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TokenLogprob", "category_scores"]


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token, its logprob, and the alternatives the provider reported (token, logprob)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


def _value_span(text: str, field: str, chosen: str) -> tuple[int, int] | None:
    """Offsets of the string value of `field` in `text`, if it is `chosen`; the last occurrence wins (a model that
    restarts its answer is judged on the answer it kept)."""
    found = None
    for match in re.finditer('"' + re.escape(field) + r'"\s*:\s*"', text):
        start = match.end()
        if text.startswith(chosen + '"', start):
            found = (start, start + len(chosen))
    return found


def _spelled(rest: str, categories: Sequence[str]) -> list[str]:
    """Categories that the value text `rest` (what an alternative token holds after the shared prefix) starts."""
    value, closed, _ = rest.partition('"')
    if not value:
        return []
    if closed:
        return [c for c in categories if c == value]
    return [c for c in categories if c.startswith(value)]


def category_scores(
    tokens: Sequence[TokenLogprob], categories: Sequence[str], chosen: str, *, field: str = "category"
) -> dict[str, float] | None:
    """The probability of each category given the answer's tokens, or None when the value cannot be located."""
    if not tokens or chosen not in categories:
        return None
    offsets = []
    position = 0
    for token in tokens:
        offsets.append(position)
        position += len(token.token)
    text = "".join(t.token for t in tokens)
    span = _value_span(text, field, chosen)
    if span is None:
        return None
    start, end = span
    # Tokens overlapping [start, end + 1): the value and its closing quote.
    overlapping = [i for i, t in enumerate(tokens) if offsets[i] < end + 1 and offsets[i] + len(t.token) > start]
    joint = sum(tokens[i].logprob for i in overlapping)
    scores = dict.fromkeys(categories, 0.0)
    scores[chosen] = math.exp(joint)

    first = tokens[overlapping[0]]
    prefix = text[offsets[overlapping[0]] : start]  # what the first value token carried before the value
    named = {chosen}
    for alternative, logprob in first.top:
        if alternative == first.token or not alternative.startswith(prefix):
            continue
        spelled = _spelled(alternative[len(prefix) :], categories)
        for category in spelled:
            scores[category] += math.exp(logprob) / len(spelled)
            named.add(category)
    total = sum(scores.values())
    if total > 1.0:
        # Alternative tokenizations of one category can overlap in mass; keep the result a distribution.
        return {c: s / total for c, s in scores.items()}
    unnamed = [c for c in categories if c not in named]
    for category in unnamed:
        scores[category] += (1.0 - total) / len(unnamed)
    return scores
