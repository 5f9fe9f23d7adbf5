"""Talking to the models: one pooled client per provider (`_client`), their streamed answers (`_stream`, `_sse`),
fallback along a route's chain with retry and cooldowns (`_retry`, `_health`), and speculation (`_speculation`:
the cheap model starts while the classifier thinks)."""

from triage.upstream._client import Upstreams
from triage.upstream._errors import redact
from triage.upstream._health import ModelHealth, SharedHealth
from triage.upstream._speculation import Speculation, StagedClassifier, worth_speculating
from triage.upstream._sse import SSEDecoder, SSEEvent
from triage.upstream._stream import Chunk, ModelStream, completion_chars

__all__ = [
    "Chunk",
    "ModelHealth",
    "ModelStream",
    "SSEDecoder",
    "SSEEvent",
    "SharedHealth",
    "Speculation",
    "StagedClassifier",
    "Upstreams",
    "completion_chars",
    "redact",
    "worth_speculating",
]
