"""The browser dialect: named SSE events, each `data` a JSON object (DESIGN.md, "The two SSE dialects").

    route   who answers and why (sent once the answering model produced its first token)
    delta   {"text"}: text appended to the answer
    patch   one structured-output patch (see _jsonpatch); applying all in order to {} gives the final JSON
    tool_call  {"index", "id", "name", "arguments"}: a piece of a tool call (name and id on the first piece)
    usage   tokens, cost_usd, baseline_cost_usd, saved_usd, wasted_speculative_tokens
    error   {"type", "message", "retryable", "path"?}: the stream ends here, without `done`
    done    {"finish_reason"}

A stream always ends with `done` or `error`: never silently.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from ._accounting import Cost
from ._exceptions import StructuredOutputError, TriageError, UpstreamError
from ._gateway import StreamTally
from ._http import dumps
from ._structured import IncrementalJSONParser
from ._upstream import ModelStream

__all__ = ["sse_event", "ui_events"]

logger = logging.getLogger("triage.stream")

_CLOSE_TIMEOUT = 5.0


def sse_event(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def error_event(exc: TriageError) -> bytes:
    data: dict[str, Any] = {"type": exc.error_type, "message": exc.message, "retryable": exc.retryable}
    if isinstance(exc, StructuredOutputError):
        data["path"] = exc.path
    return sse_event("error", data)


async def ui_events(
    stream: ModelStream,
    *,
    route: dict[str, Any],
    parser: IncrementalJSONParser | None,
    settle: Callable[[StreamTally, str], tuple[Cost, dict[str, Any]]],
) -> AsyncIterator[bytes]:
    """Encode `stream` for a browser. `settle(tally, status)` accounts for the request exactly once and returns its
    cost and the `usage` event's data; it runs before `usage` on success, and on the way out otherwise."""
    tally = StreamTally()
    settled = False
    yield sse_event("route", route)
    try:
        async for chunk in stream:
            tally.observe(chunk)
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    if parser is None:
                        yield sse_event("delta", {"text": delta.content})
                    else:
                        for patch in parser.feed(delta.content):
                            yield sse_event("patch", patch)
                for call in delta.tool_calls or ():
                    function = call.function
                    yield sse_event("tool_call", {
                        "index": call.index, "id": call.id,
                        "name": function.name if function else None,
                        "arguments": (function.arguments or "") if function else "",
                    })
        if parser is not None:
            for patch in parser.finish():
                yield sse_event("patch", patch)
        settled = True
        _, usage = settle(tally, "ok")
        yield sse_event("usage", usage)
        yield sse_event("done", {"finish_reason": tally.finish_reason})
    except (UpstreamError, StructuredOutputError) as exc:
        logger.warning("UI stream from %s ended in error: %s", stream.model, exc.message)
        settled = True
        settle(tally, "upstream_error")
        yield error_event(exc)
    finally:
        with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await stream.aclose()
        if not settled:
            settle(tally, "cancelled")
