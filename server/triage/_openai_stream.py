"""The OpenAI dialect: a routed model's stream as OpenAI chat-completion chunks, exactly, ending in `[DONE]`.

A failure after the first token ends the stream with `data: {"error": {...}}` and no `[DONE]`, so no OpenAI client
mistakes a cut answer for a whole one (openai-python raises `APIError` on it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import anyio

from ._exceptions import UpstreamError
from ._gateway import StreamTally
from ._http import dumps
from ._upstream import ModelStream

__all__ = ["DONE", "openai_chunks"]

logger = logging.getLogger("triage.stream")

DONE = b"data: [DONE]\n\n"
# Bound on closing the upstream after a cancel: closing must happen, but must not hang a worker.
_CLOSE_TIMEOUT = 5.0


async def openai_chunks(
    stream: ModelStream,
    *,
    include_usage: bool,
    settle: Callable[[StreamTally, str], object],
) -> AsyncIterator[bytes]:
    """Encode `stream`; `settle(tally, status)` accounts for it exactly once whatever happens (status: ok |
    upstream_error | cancelled), after the upstream is closed."""
    tally = StreamTally()
    status = "cancelled"
    try:
        async for chunk in stream:
            tally.observe(chunk)
            if not chunk.choices and chunk.usage is not None and not include_usage:
                continue  # Triage asked for usage for its accounting; this client did not
            data = chunk.to_dict()
            data["model"] = stream.model
            yield b"data: " + dumps(data) + b"\n\n"
        status = "ok"
        yield DONE
    except UpstreamError as exc:
        status = "upstream_error"
        logger.warning("stream from %s failed after its first token: %s", stream.model, exc.message)
        yield b"data: " + dumps(exc.to_dict()) + b"\n\n"
    finally:
        # Shielded: on a client disconnect this runs inside a cancelled scope, and the upstream must still close.
        with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await stream.aclose()
        settle(tally, status)
