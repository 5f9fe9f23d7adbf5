"""Speculative warm-up: while an LLM classifier thinks (~180 ms), the cheap model already starts answering.

If the plan then starts with that model, its live stream is adopted: the tokens it produced meanwhile go out at
once. If not, it is cancelled (its HTTP request closed, so the provider stops generating) and what it cost is
recorded as waste. A speculative stream is never shown to the client before the route is decided: the gateway
only hands it over through `adopt()`, after planning.

`auto` speculates only when it pays: when an LLM layer is about to be asked (local-only decisions take well
under a millisecond, nothing to hide), its expected latency is not negligible against the cheap model's time to
first token, and the prompt is small enough to waste.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from triage._config import SpeculationConfig
from triage._exceptions import UpstreamError
from triage.classify import ClassifyInput, Decision
from triage.route import Usage, estimate_tokens
from triage.upstream._stream import ModelStream, completion_chars

__all__ = ["Speculation", "StagedClassifier", "worth_speculating"]

logger = logging.getLogger("triage.speculation")

T = TypeVar("T", ModelStream, dict[str, Any])


@runtime_checkable
class StagedClassifier(Protocol):
    """A classifier whose slow layer can be told apart: `classify_local` is the fast pass, `needs_llm` says whether
    `escalate` will consult the slow layer, which takes about `expected_llm_ms`. The cascade implements it."""

    @property
    def expected_llm_ms(self) -> float: ...

    async def classify_local(self, request: ClassifyInput) -> Decision: ...

    def needs_llm(self, decision: Decision) -> bool: ...

    async def escalate(self, request: ClassifyInput, decision: Decision) -> Decision: ...


def worth_speculating(
    config: SpeculationConfig, *, expected_classify_ms: float, cheap_ttft_ms: float, prompt_tokens: int
) -> bool:
    """The `auto` rule: hide classification time only where there is time to hide, on prompts cheap to waste.
    (`always` and `never` are decided by the caller.)"""
    if prompt_tokens > config.max_prompt_tokens:
        return False
    # Worth it once classification is a noticeable share of the wait for the cheap model's first token.
    return expected_classify_ms >= 0.1 * cheap_ttft_ms


class Speculation(Generic[T]):
    """The cheap model's answer, started before the route is known. Either `adopt()` or `cancel()` it, once."""

    def __init__(self, model: str, start: Callable[[], Awaitable[T]], *, prompt_chars: int) -> None:
        self.model = model
        self._prompt_chars = prompt_chars
        self._task: asyncio.Task[T] = asyncio.ensure_future(start())

    async def adopt(self) -> T | None:
        """The speculative answer, or None if it failed (the caller then takes the normal path, silently)."""
        try:
            return await self._task
        except UpstreamError as exc:
            logger.info("speculative request to %s failed (%s); taking the normal path", self.model, exc.message)
            return None

    async def cancel(self) -> Usage:
        """Stop the speculative request and return what it spent: its prompt, once the provider had it, and the
        completion tokens that had arrived."""
        if not self._task.done():
            self._task.cancel()
            # The cancelled open closes its HTTP request in its own cleanup; wait for that to finish.
            with contextlib.suppress(asyncio.CancelledError, UpstreamError):
                await self._task
            # Cancelled in flight: the provider had the prompt and charges for it; the completion is unknown.
            return Usage(estimate_tokens(self._prompt_chars), 0, estimated=True)
        if self._task.cancelled() or self._task.exception() is not None:
            return Usage()  # it failed: the provider charged nothing we can know of
        result = self._task.result()
        if isinstance(result, ModelStream):
            result.close()
            chars = sum(completion_chars(chunk) for chunk in result.head)
            return Usage(estimate_tokens(self._prompt_chars), estimate_tokens(chars), estimated=True)
        usage = result.get("usage") or {}
        return Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
