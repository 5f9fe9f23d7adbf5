"""Triage: classify each chat request, route it to the right model, stream the answer."""

from triage._config import TriageConfig, load_config
from triage._exceptions import (
    AllModelsFailed,
    AuthenticationError,
    ClassifierError,
    ConfigError,
    InvalidRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RequestError,
    ShuttingDown,
    StructuredOutputError,
    TriageError,
    UnprocessableRequest,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from triage.app._app import create_app
from triage.app._middleware import TriageMiddleware
from triage.classify._cascade import CascadeClassifier, build_classifier
from triage.classify._decision import Classifier, ClassifyInput, Decision, LayerTiming
from triage.classify._rules import RulesClassifier
from triage.classify.local._classifier import LocalClassifier
from triage.classify.local._head import Head, train_head

__version__ = "0.1.0"

__all__ = [
    "AllModelsFailed",
    "AuthenticationError",
    "CascadeClassifier",
    "Classifier",
    "ClassifierError",
    "ClassifyInput",
    "ConfigError",
    "Decision",
    "Head",
    "InvalidRequest",
    "LayerTiming",
    "LocalClassifier",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RequestError",
    "RulesClassifier",
    "ShuttingDown",
    "StructuredOutputError",
    "TriageConfig",
    "TriageError",
    "TriageMiddleware",
    "UnprocessableRequest",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "build_classifier",
    "create_app",
    "load_config",
    "train_head",
]
