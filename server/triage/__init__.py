"""Triage: classify each chat request, route it to the right model, stream the answer."""

from __future__ import annotations

from ._classifier import Classifier, ClassifyInput, Decision, LayerTiming, RulesClassifier
from ._config import TriageConfig, load_config
from ._middleware import TriageMiddleware
from ._app import create_app
from ._cascade import CascadeClassifier, build_classifier
from ._exceptions import *
from ._exceptions import __all__ as _exception_names

__version__ = "0.1.0"

__all__ = [
    "CascadeClassifier",
    "Classifier",
    "ClassifyInput",
    "Decision",
    "LayerTiming",
    "RulesClassifier",
    "TriageConfig",
    "TriageMiddleware",
    "build_classifier",
    "create_app",
    "load_config",
    *_exception_names,
]
