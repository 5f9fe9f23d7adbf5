"""The `llm` classifier: one instructor call to any OpenAI-compatible model, answering `{"category": ...}`.

- Modes: instructor's TOOLS (a forced function call) or JSON_SCHEMA (`response_format: json_schema`, or
  `json_object` + schema for providers that take that dialect, such as llama-cpp-python's server).
- Prompt: a system prompt under 50 tokens naming the categories, 3-5 few-shot turns, then the request's prior user
  turns (context) and its last user turn. Route descriptions, when configured, go into the schema's field
  description rather than the system prompt.
- Confidence: the probability of the category's tokens (`logprobs: true, top_logprobs: 5`, see `_logprobs`).
  Without logprobs, the fixed `NO_LOGPROBS_CONFIDENCE`: OpenAI returns none for tool-call arguments (nor does the
  simulator); llama-cpp-python's server does, in both modes (checked with SmolLM2-135M).
- No retries (`max_retries=0`): a retry would double the latency of the hot path, and the cascade already has an
  answer to fall back on. A timeout or any failure raises `ClassifierError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import instructor
import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, Field, create_model

from triage._exceptions import ClassifierError, ConfigError
from triage.classify._decision import DEFAULT_CATEGORIES, ClassifyInput, Decision, LayerTiming
from triage.classify._logprobs import TokenLogprob, category_scores

__all__ = ["DEFAULT_EXAMPLES", "NO_LOGPROBS_CONFIDENCE", "LLMClassifier", "system_prompt"]

logger = logging.getLogger("triage.classifier.llm")

# Without logprobs the model's answer is taken at this confidence: above the LLM layer's default threshold (0.6),
# since a model asked only when the local layer was unsure is usually right, and below certainty (rules are 1.0).
NO_LOGPROBS_CONFIDENCE = 0.7
MAX_EXAMPLES = 5
# Characters kept of the last user turn and of each prior one: the start of a message carries its intent, and a
# pasted document must not turn a 200 ms classification into a 2 s one.
LAST_TURN_CHARS = 2000
PRIOR_TURN_CHARS = 500

# Few-shot examples for the default categories (used for those of them that are configured, when the config gives
# none). Written for this project.
DEFAULT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What's the capital of Australia?", "simple"),
    ("A train leaves at 3pm at 80 km/h, another at 4pm at 100 km/h. When does the second catch up?", "reasoning"),
    ("What's the weather in Lisbon right now?", "tool_use"),
    ("Can you make this email sound a bit friendlier?", "simple"),
    ("Why does my recursive function overflow the stack on large inputs?", "reasoning"),
)

Mode = Literal["tools", "json_schema"]


def system_prompt(categories: Sequence[str]) -> str:
    return (
        f"Classify the last user message into one category: {', '.join(categories)}. "
        "Earlier user turns are context only."
    )


def _response_model(categories: Sequence[str], descriptions: Mapping[str, str]) -> type[BaseModel]:
    # A Literal keeps the enum inline in the schema (an Enum adds a $defs/$ref pair: more prompt tokens).
    category_type: Any = Literal.__getitem__(tuple(categories))
    described = "; ".join(f"{c}: {descriptions[c]}" for c in categories if descriptions.get(c))
    field: Any = Field(description=described) if described else ...
    # Based on instructor's schema class: otherwise instructor wraps the model in a fresh subclass on every call,
    # which costs a pydantic model build and defeats its schema cache (~1 ms of CPU per call, measured).
    model: type[BaseModel] = create_model(
        "Route",
        __base__=instructor.OpenAISchema,
        __doc__="The route for the last user message.",
        category=(category_type, field),
    )
    return model


def _examples(categories: Sequence[str], configured: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    for i, (_, category) in enumerate(configured):
        if category not in categories:
            raise ConfigError(f"classifier.llm.examples.{i}: unknown category {category!r}")
    pool = list(configured) or [e for e in DEFAULT_EXAMPLES if e[1] in categories]
    # Round-robin over categories, so five examples out of many cover as many categories as they can.
    by_category: dict[str, list[tuple[str, str]]] = {}
    for example in pool:
        by_category.setdefault(example[1], []).append(example)
    chosen: list[tuple[str, str]] = []
    while len(chosen) < MAX_EXAMPLES and any(by_category.values()):
        for queue in by_category.values():
            if queue and len(chosen) < MAX_EXAMPLES:
                chosen.append(queue.pop(0))
    return chosen


def _user_message(request: ClassifyInput) -> str:
    last = request.last_user[:LAST_TURN_CHARS]
    if request.has_tools:
        last += "\n(The caller offered tools.)"
    if not request.prior_user:
        return last
    prior = "\n".join(f"- {turn[:PRIOR_TURN_CHARS]}" for turn in request.prior_user)
    return f"Earlier user turns:\n{prior}\nLast user message:\n{last}"


class LLMClassifier:
    """Classifies with one call to `model` (the provider's upstream id) through `client`, a pooled
    `openai.AsyncOpenAI`. `json_schema` is the provider's dialect for JSON-schema mode (see `ProviderConfig`)."""

    name = "llm"

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        categories: Sequence[str] = DEFAULT_CATEGORIES,
        mode: Mode = "tools",
        timeout: float = 1.0,
        examples: Sequence[tuple[str, str]] = (),
        descriptions: Mapping[str, str] | None = None,
        json_schema: Literal["native", "json_object"] = "native",
        logprobs: bool = True,
        expected_ms: float = 180.0,
    ) -> None:
        if not categories:
            raise ConfigError("the llm classifier needs at least one category")
        self._categories = tuple(categories)
        self._model = model
        self._timeout = timeout
        self.expected_ms = expected_ms
        self._response_model = _response_model(self._categories, descriptions or {})
        self._client = instructor.from_openai(
            client, mode=instructor.Mode.TOOLS if mode == "tools" else instructor.Mode.JSON_SCHEMA
        )
        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system_prompt(self._categories)}]
        for text, category in _examples(self._categories, examples):
            messages.append({"role": "user", "content": text})
            messages.append({"role": "assistant", "content": f'{{"category": "{category}"}}'})
        self._prefix = messages
        self._extra: dict[str, Any] = {"logprobs": True, "top_logprobs": 5} if logprobs else {}
        if mode == "json_schema" and json_schema == "json_object":
            # llama-cpp-python's dialect; `extra_body` overrides the `response_format` instructor sets.
            schema = self._response_model.model_json_schema()
            self._extra["extra_body"] = {"response_format": {"type": "json_object", "schema": schema}}

    @property
    def categories(self) -> Sequence[str]:
        return self._categories

    def messages(self, request: ClassifyInput) -> list[ChatCompletionMessageParam]:
        """The chat messages sent for `request`: system prompt, few-shot turns, then the request's turns."""
        return [*self._prefix, {"role": "user", "content": _user_message(request)}]

    async def classify(self, request: ClassifyInput) -> Decision:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                answer, completion = await self._client.create_with_completion(
                    model=self._model,
                    messages=self.messages(request),
                    response_model=self._response_model,
                    max_retries=0,
                    temperature=0,
                    **self._extra,
                )
        except TimeoutError:
            raise ClassifierError(f"the llm classifier gave no answer within {self._timeout:g}s") from None
        except Exception as exc:  # openai, instructor and validation errors alike: the caller falls back
            raise ClassifierError(f"the llm classifier failed: {type(exc).__name__}") from exc
        category: str = getattr(answer, "category")  # noqa: B009  (a dynamic model: mypy cannot see the field)
        scores = self._scores(completion, category)
        ms = (time.perf_counter() - started) * 1000
        return Decision(category, scores[category], scores, self.name, ms, (LayerTiming(self.name, ms),))

    def _scores(self, completion: Any, category: str) -> dict[str, float]:
        choice = completion.choices[0] if getattr(completion, "choices", None) else None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content:
            tokens = [
                TokenLogprob(t.token, t.logprob, tuple((a.token, a.logprob) for a in (t.top_logprobs or ())))
                for t in content
            ]
            scores = category_scores(tokens, self._categories, category)
            if scores is not None:
                return scores
            logger.debug("logprobs returned but the category value was not found in %d tokens", len(tokens))
        rest = (1.0 - NO_LOGPROBS_CONFIDENCE) / max(len(self._categories) - 1, 1)
        return {c: (NO_LOGPROBS_CONFIDENCE if c == category else rest) for c in self._categories}
