"""Retry and timing constants, in one place (as openai-python's _constants.py)."""

from __future__ import annotations

# Backoff when the last model of a chain failed with a retryable status and no usable retry-after.
INITIAL_RETRY_DELAY = 0.25
MAX_RETRY_DELAY = 4.0
# Statuses worth trying another model (or the same one later) for: timeout, conflict, rate limit, server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 429})
