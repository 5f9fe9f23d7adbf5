"""What every classifier shares: the `Classifier` protocol, what it sees of a request (`ClassifyInput`) and the
`Decision` it returns.

Every classifier (rules, local, llm, cascade) takes a `ClassifyInput` and returns a `Decision`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from triage._types import ChatMessage

__all__ = [
    "DEFAULT_CATEGORIES",
    "REASONING",
    "SIMPLE",
    "TOOL_USE",
    "Classifier",
    "ClassifyInput",
    "Decision",
    "LayerTiming",
    "message_text",
]

SIMPLE = "simple"
REASONING = "reasoning"
TOOL_USE = "tool_use"
DEFAULT_CATEGORIES: tuple[str, ...] = (SIMPLE, REASONING, TOOL_USE)


def message_text(message: Mapping[str, object]) -> str:
    """The text of one chat message; multi-part content keeps only its text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


@dataclass(frozen=True, slots=True)
class ClassifyInput:
    """What a classifier sees of a request: the last user turn, a bounded window of earlier user turns, and
    whether the caller offered tools. Earlier turns let a follow-up ("and in Python?") keep its topic's route."""

    last_user: str
    prior_user: tuple[str, ...] = ()
    has_tools: bool = False

    @classmethod
    def from_messages(
        cls, messages: Sequence[ChatMessage], *, has_tools: bool = False, context_turns: int = 2
    ) -> ClassifyInput:
        user_turns = [message_text(m) for m in messages if m.get("role") == "user"]
        if not user_turns:
            # A request with no user turn (system-only, or assistant prefill) is classified on what it has.
            user_turns = [message_text(m) for m in messages[-1:]]
        last = user_turns[-1] if user_turns else ""
        prior = tuple(user_turns[-1 - context_turns : -1]) if context_turns > 0 else ()
        return cls(last_user=last, prior_user=prior, has_tools=has_tools)

    @property
    def text(self) -> str:
        """Prior turns then the last one, newline-joined: the text a learned classifier encodes."""
        return "\n".join((*self.prior_user, self.last_user))


@dataclass(frozen=True, slots=True)
class LayerTiming:
    layer: str
    ms: float


@dataclass(frozen=True, slots=True)
class Decision:
    """A classifier's verdict. `confidence` is the calibrated probability of `category`; `scores` holds the
    probability of every category; `classifier` names the layer that decided; `layers` times each layer asked."""

    category: str
    confidence: float
    scores: Mapping[str, float]
    classifier: str
    latency_ms: float
    layers: tuple[LayerTiming, ...] = field(default=())


@runtime_checkable
class Classifier(Protocol):
    """Anything that turns a request into a Decision. Implementations must not block the event loop for more
    than about a millisecond: heavier work goes to a thread."""

    name: str

    @property
    def categories(self) -> Sequence[str]: ...

    async def classify(self, request: ClassifyInput) -> Decision: ...
