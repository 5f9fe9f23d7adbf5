"""Triage: classify each chat request, route it to the right model, stream the answer."""

from __future__ import annotations

from ._classifier import ClassifyInput, Classifier, Decision, LayerTiming, RulesClassifier
from ._config import TriageConfig, load_config
from ._exceptions import *  # noqa: F403  (the tree's __all__ is curated)
from ._exceptions import __all__ as _exception_names

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "ClassifyInput",
    "Decision",
    "LayerTiming",
    "RulesClassifier",
    "TriageConfig",
    "load_config",
    *_exception_names,
]
