"""The retry policy as two pure functions (after openai-python's _should_retry / _calculate_retry_timeout)."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Mapping

from triage.upstream._constants import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY, RETRYABLE_STATUSES

__all__ = ["parse_retry_after", "retry_delay", "should_retry"]

logger = logging.getLogger("triage.retry")


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """Whether a failed upstream answer is worth another attempt (on this model later, or the next one)."""
    # The provider's explicit word wins: OpenAI sends x-should-retry on some errors.
    explicit = headers.get("x-should-retry")
    if explicit in ("true", "false"):
        logger.debug("retry: status %d, x-should-retry=%s", status, explicit)
        return explicit == "true"
    retry = status in RETRYABLE_STATUSES or status >= 500
    logger.debug("retry: status %d -> %s", status, retry)
    return retry


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` as seconds or an HTTP date; None when absent or invalid."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def retry_delay(attempt: int, retry_after: float | None, *, cap: float) -> float:
    """How long to wait before attempt number `attempt` (1-based): `retry_after` when given and within `cap`,
    else capped exponential backoff with up to 25% jitter."""
    if retry_after is not None and retry_after <= cap:
        return retry_after
    backoff: float = min(INITIAL_RETRY_DELAY * 2.0 ** (attempt - 1), MAX_RETRY_DELAY, cap)
    return backoff * (1 - 0.25 * random.random())
