"""The browser dialect: named SSE events, each `data` a JSON object (DESIGN.md, "The two SSE dialects").

    route   who answers and why (sent once the answering model produced its first token)
    delta   {"text"}: text appended to the answer
    patch   the structured-output patches of one upstream read, in the compact encoding of structured/_wire
            (decoded, they are structured/_patch's patches: applying all in order to {} gives the final JSON)
    tool_call  {"index", "id", "name", "arguments"}: a piece of a tool call (name and id on the first piece)
    usage   tokens, cost_usd, baseline_cost_usd, saved_usd, wasted_speculative_tokens
    error   {"type", "message", "retryable", "path"?}: the stream ends here, without `done`
    done    {"finish_reason"}

A stream always ends with `done` or `error`: never silently.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from triage._exceptions import ShuttingDown, StructuredOutputError, TriageError, UpstreamError
from triage._json import dumps
from triage.stream._answer import Answer, StreamTally
from triage.stream.structured import IncrementalJSONParser, Patch, WireEncoder
from triage.upstream import Chunk

__all__ = ["error_event", "sse_event", "ui_events"]

logger = logging.getLogger("triage.stream")


def sse_event(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


class _Structured:
    """A structured answer's parser and the encoder of its `patch` events."""

    __slots__ = ("parser", "wire")

    def __init__(self, parser: IncrementalJSONParser) -> None:
        self.parser = parser
        self.wire = WireEncoder()

    def events(self, patches: list[Patch]) -> list[bytes]:
        """One `patch` event for the patches gathered so far (none for none); empties `patches`."""
        if not patches:
            return []
        data = self.wire.encode(patches)
        patches.clear()
        return [b"event: patch\ndata: " + data + b"\n\n"] if data else []


def _encode_batch(
    batch: list[Chunk], tally: StreamTally, structured: _Structured | None
) -> tuple[bytes, StructuredOutputError | None]:
    """The events of the chunks one upstream read brought, as one write. Their patches go out as one `patch`
    event (a string grown by several chunks is one append). A structured answer that stops being JSON gives the
    valid prefix's events and the error, which the caller sends after them."""
    events: list[bytes] = []
    patches: list[Patch] = []
    parser = structured.parser if structured is not None else None
    for chunk in batch:
        tally.observe(chunk)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content and parser is None:
                events.append(sse_event("delta", {"text": content}))
            elif content and parser is not None:
                try:
                    patches += parser.feed(content)
                except StructuredOutputError as exc:
                    assert structured is not None
                    return b"".join([*events, *structured.events(patches)]), exc
            for call in delta.get("tool_calls") or ():
                if structured is not None:
                    events += structured.events(patches)
                function = call.get("function") or {}
                events.append(sse_event("tool_call", {
                    "index": call.get("index", 0),
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments") or "",
                }))
    if structured is not None:
        events += structured.events(patches)
    return b"".join(events), None


def error_event(exc: TriageError) -> bytes:
    data: dict[str, Any] = {"type": exc.error_type, "message": exc.message, "retryable": exc.retryable}
    if isinstance(exc, StructuredOutputError):
        data["path"] = exc.path
    return sse_event("error", data)


async def ui_events(
    answer: Answer[dict[str, Any]], *, route: dict[str, Any], parser: IncrementalJSONParser | None
) -> AsyncIterator[bytes]:
    """Encode `answer` for a browser. `answer.settle(status)` returns the `usage` event's data."""
    yield sse_event("route", route)
    structured = _Structured(parser) if parser is not None else None
    try:
        async for batch in answer.stream.batches():
            events, broken = _encode_batch(batch, answer.tally, structured)
            if events:
                yield events  # the chunks of one upstream read go out as one write
            if broken is not None:
                raise broken
        if structured is not None:
            tail = structured.events(structured.parser.finish())
            if tail:
                yield tail[0]
        yield sse_event("usage", answer.settle("ok"))
        yield sse_event("done", {"finish_reason": answer.tally.finish_reason})
    except (UpstreamError, StructuredOutputError) as exc:
        error: TriageError = exc
        if answer.drained:
            error = ShuttingDown("Triage is shutting down; the answer was cut: retry the request")
        logger.warning("UI stream from %s ended in error: %s", answer.model, error.message)
        answer.settle("upstream_error")
        yield error_event(error)
    finally:
        await answer.aclose()
