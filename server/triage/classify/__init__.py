"""Classification: what kind of request this is, and how sure the classifier is.

    rules (_rules) ─▶ local head (local/) ─▶ LLM classifier (_llm, asked only when unsure) = the cascade (_cascade)

Each takes a `ClassifyInput` and returns a `Decision` (`_decision`). `_data` reads labeled text and the project's
exemplars; `_evaluation` measures how a classifier's decisions route a labeled set.
"""

from triage.classify._cascade import CascadeClassifier, build_classifier
from triage.classify._data import DEFAULT_EXEMPLAR_WEIGHT, load_exemplars, read_jsonl
from triage.classify._decision import (
    DEFAULT_CATEGORIES,
    REASONING,
    SIMPLE,
    TOOL_USE,
    Classifier,
    ClassifyInput,
    Decision,
    LayerTiming,
    message_text,
)
from triage.classify._evaluation import (
    Routed,
    bars_of,
    cheapest_category,
    choose_threshold,
    decide_all,
    macro_f1,
    route_metrics,
)
from triage.classify._rules import RulesClassifier
from triage.classify.local import Head, LocalClassifier, train_head

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_EXEMPLAR_WEIGHT",
    "REASONING",
    "SIMPLE",
    "TOOL_USE",
    "CascadeClassifier",
    "Classifier",
    "ClassifyInput",
    "Decision",
    "Head",
    "LayerTiming",
    "LocalClassifier",
    "Routed",
    "RulesClassifier",
    "bars_of",
    "build_classifier",
    "cheapest_category",
    "choose_threshold",
    "decide_all",
    "load_exemplars",
    "macro_f1",
    "message_text",
    "read_jsonl",
    "route_metrics",
    "train_head",
]
