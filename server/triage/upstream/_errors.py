"""Upstream failures in Triage's exception tree: transport errors mapped most specific first, and nothing that
could leak a key (a provider's message may echo one)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence

import aiohttp

from triage._exceptions import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout

__all__ = ["error_message", "mapped_errors", "redact"]

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


@contextlib.contextmanager
def mapped_errors(model: str) -> Iterator[None]:
    """Turn transport errors into Triage's tree, most specific first, never leaking a key."""
    try:
        yield
    except UpstreamError:
        raise
    except aiohttp.ClientConnectorError as exc:
        refused = ": connection refused" if _refused(exc) else ""
        raise UpstreamConnectError(f"cannot reach model {model!r}{refused}", model=model) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise UpstreamTimeout(f"model {model!r} timed out", model=model) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamProtocolError(f"the stream from model {model!r} was cut", model=model) from exc
    except json.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"model {model!r} sent a malformed chunk", model=model) from exc
