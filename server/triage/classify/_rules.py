"""The deterministic rules layer: offered tools mean `tool_use`; obvious code or math means `reasoning`.

It is both the classifier used before a learned one is configured and the cascade's first layer:
`RulesClassifier.match` abstains (returns None) when no rule fires, `classify` falls back to the default category.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from triage.classify._decision import (
    DEFAULT_CATEGORIES,
    REASONING,
    SIMPLE,
    TOOL_USE,
    ClassifyInput,
    Decision,
    LayerTiming,
)

__all__ = ["RulesClassifier"]


# Fenced code, or lines that look like source code.
_CODE = re.compile(
    r"```|^\s*(def |class |import |from \S+ import |#include|public static|function\s*\w*\(|const \w+ =|SELECT .+ FROM)"
    r"|\b(traceback|stack trace|segfault|compile error|syntax error|regex|regular expression)\b",
    re.IGNORECASE | re.MULTILINE,
)
# Requests to write, fix or explain a program.
_CODE_TASK = re.compile(
    r"\b(write|implement|code|debug|refactor|optimi[sz]e|fix)\b[^.?!\n]{0,60}"
    r"\b(function|program|script|class|method|algorithm|query|code|bug|python|javascript|typescript|java|rust|c\+\+|sql)\b",
    re.IGNORECASE,
)
# Math notation or explicit derivation requests. A bare "-" or "/" between digits is a date (2024-01-31, 1/31/2024)
# or a rating (4/5) far more often than arithmetic, so those count only with spaces around them ("7 - 3"); "prove"
# only with a proposition after it (not "prove my identity"). Measured on dev.jsonl: 18 of 665 firings were wrong,
# now 1 of 602 (bench/classifier.py's data), none on the shipped exemplars.
# Arithmetic is a regex of its own that opens with `\d`: re finds its candidates by a fast scan for a digit, where
# an alternation of different openings is tried at every position of the text (and ~28% of requests hold a digit).
_ARITHMETIC = re.compile(r"\d(?:\s*[+*×÷^=]\s*\d|\s+[-/]\s+\d)")
_MATH = re.compile(
    r"\b(solve|prove (that|the|by|it|this|there)|derive|integral|derivative|equation|theorem|probability that)\b"
    r"|[∑∫√≤≥≠π]|\\frac|\\sum",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Rule:
    """A rule's regex, and strings (lower-case) of which every match in an ASCII text holds one. A substring test
    is a fast scan, while these case-insensitive alternations are tried at every position of the text (~20 µs a
    request for the three), and most requests hold none of the strings. Beyond ASCII, case folding reaches further
    than `str.lower()` (the Kelvin sign matches "k"), so there the regex always runs."""

    pattern: re.Pattern[str]
    needs: tuple[str, ...]

    def search(self, text: str, lower: str, ascii: bool) -> bool:
        if ascii:
            for needed in self.needs:  # a plain loop: any() over a generator costs ~1 µs
                if needed in lower:
                    break
            else:
                return False
        return self.pattern.search(text) is not None


_RULES = (
    _Rule(_CODE, ("```", "def ", "class ", "import ", "#include", "public static", "function", "const ", "select ",
                  "traceback", "stack trace", "segfault", "compile error", "syntax error", "regex",
                  "regular expression")),
    _Rule(_CODE_TASK, ("write", "implement", "code", "debug", "refactor", "optimi", "fix")),
    _Rule(_ARITHMETIC, ("",)),  # the empty string is in every text: always searched, by its fast scan
    # "deriv" stands for derive and derivative, a backslash for \frac and \sum.
    _Rule(_MATH, ("solve", "prove ", "deriv", "integral", "equation", "theorem", "probability that", "\\")),
)


class RulesClassifier:
    """Deterministic signals: offered tools mean `tool_use`; obvious code or math means `reasoning`.

    Rules decide only when a signal is unambiguous, so their confidence is 1.0; `match` returns None otherwise.
    """

    name = "rules"

    def __init__(self, categories: Sequence[str] = DEFAULT_CATEGORIES, *, default: str = SIMPLE) -> None:
        self._categories = tuple(categories)
        self._default = default

    @property
    def categories(self) -> Sequence[str]:
        return self._categories

    def match(self, request: ClassifyInput) -> str | None:
        if request.has_tools and TOOL_USE in self._categories:
            return TOOL_USE
        if REASONING in self._categories:
            text = request.last_user
            lower, ascii = text.lower(), text.isascii()
            for rule in _RULES:
                if rule.search(text, lower, ascii):
                    return REASONING
        return None

    def decision(self, category: str, *, started: float, classifier: str = "rules") -> Decision:
        """A certain Decision for `category`, timed from `started` (a `time.perf_counter()` reading)."""
        ms = (time.perf_counter() - started) * 1000
        scores = {c: (1.0 if c == category else 0.0) for c in self._categories}
        return Decision(category, 1.0, scores, classifier, ms, (LayerTiming(self.name, ms),))

    async def classify(self, request: ClassifyInput) -> Decision:
        started = time.perf_counter()
        # With no rule fired, the default route: the rules layer alone has no notion of doubt.
        return self.decision(self.match(request) or self._default, started=started)
