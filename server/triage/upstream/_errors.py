"""Upstream failures in Triage's exception tree: transport errors mapped most specific first, and nothing that
could leak a key (a provider's message may echo one)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence

import aiohttp

from triage._exceptions import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout

__all__ = ["error_message", "mapped_error", "mapped_errors", "redact"]

_KEY_LIKE = re.compile(r"\b(sk|key|rk|pk)-[A-Za-z0-9_\-*]{6,}")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with every configured secret and anything shaped like an API key replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def _refused(exc: BaseException) -> bool:
    """Whether a connection refusal lies anywhere in `exc`'s chain of causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def error_message(text: str) -> str:
    """The message of a provider's error body (OpenAI's `{"error": {"message"}}`), else the text itself."""
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict):
            error = data.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            if isinstance(message, str) and message:
                return message
    return text.strip() or "no details"


def mapped_error(exc: Exception, model: str) -> Exception:
    """`exc` in Triage's tree (most specific first, never leaking a key); `exc` itself if it is not a transport
    error. Raise the result `from exc`."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = ": connection refused" if _refused(exc) else ""
        return UpstreamConnectError(f"cannot reach model {model!r}{refused}", model=model)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"model {model!r} timed out", model=model)
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamProtocolError(f"the stream from model {model!r} was cut", model=model)
    if isinstance(exc, json.JSONDecodeError):
        return UpstreamProtocolError(f"model {model!r} sent a malformed chunk", model=model)
    return exc


@contextlib.contextmanager
def mapped_errors(model: str) -> Iterator[None]:
    """Turn transport errors into Triage's tree (`mapped_error`)."""
    try:
        yield
    except Exception as exc:
        error = mapped_error(exc, model)
        if error is exc:
            raise
        raise error from exc
