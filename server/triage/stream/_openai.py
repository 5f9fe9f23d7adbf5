"""The OpenAI dialect: a routed model's stream as OpenAI chat-completion chunks, exactly, ending in `[DONE]`.

A failure after the first token ends the stream with `data: {"error": {...}}` and no `[DONE]`, so no OpenAI client
mistakes a cut answer for a whole one (openai-python raises `APIError` on it).

Most of an answer is relayed as the provider's bytes (`ChunkRelay`): its events are already OpenAI's chunks, and
only their `model` needs Triage's name. The head, the end, usage and anything unusual are decoded and re-encoded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from triage._exceptions import ShuttingDown, TriageError, UpstreamError
from triage._json import dumps
from triage.stream._answer import Answer, StreamTally, completion_chars
from triage.upstream import Chunk

__all__ = ["DONE", "ChunkRelay", "openai_chunks"]

logger = logging.getLogger("triage.stream")

DONE = b"data: [DONE]\n\n"


async def openai_chunks(answer: Answer[Any], *, include_usage: bool) -> AsyncIterator[bytes]:
    """The answer as OpenAI's SSE; the chunks of one upstream read go out as one write."""
    model = answer.model
    observe = answer.tally.observe
    relay = ChunkRelay(model, answer.stream.head, include_usage=include_usage, tally=answer.tally)
    try:
        async for batch in answer.stream.relayed(relay):
            if isinstance(batch, bytes):
                yield batch
                continue
            events: list[bytes] = []
            for chunk in batch:
                observe(chunk)
                if not include_usage:
                    # Triage asked for usage for its accounting; this client did not.
                    if not chunk.get("choices") and chunk.get("usage"):
                        continue
                    chunk.pop("usage", None)
                chunk["model"] = model
                events.append(dumps(chunk))
            if events:
                # One write per upstream read; joined once (a concatenation per chunk showed in profiles).
                yield b"data: " + b"\n\ndata: ".join(events) + b"\n\n"
        answer.settle("ok")
        yield DONE
    except UpstreamError as exc:
        error: TriageError = exc
        if answer.drained:
            error = ShuttingDown("Triage is shutting down; the answer was cut: retry the request")
        logger.warning("stream from %s ended after its first token: %s", model, error.message)
        answer.settle("upstream_error")
        yield b"data: " + dumps(error.to_dict()) + b"\n\n"
    finally:
        await answer.aclose()


class ChunkRelay:
    """The byte path of the OpenAI dialect: a network read of ordinary chunks goes to the client as the provider
    wrote it, with `model` renamed to Triage's name for it (and `"usage":null` dropped when the client did not ask
    for usage), instead of being parsed and re-encoded chunk by chunk.

    Ordinary: every event one `data: {...}` line, naming the model exactly as the answer's head did (which also
    tells the provider's spelling: a provider that writes `"model": "x"` is never relayed), no choice ending, no
    usage reported, no error. Anything else returns None: those reads are decoded, checked and re-encoded as
    before, so the end of an answer, its usage and a provider's mid-stream error are handled as they always were.
    What relayed chunks hold goes into the usage estimate by length (minus the head's per-event overhead); it is
    used only when the provider reports no usage, and is marked as an estimate then."""

    __slots__ = ("_from", "_overhead", "_strip_usage", "_tally", "_to")

    def __init__(self, model: str, head: list[Chunk], *, include_usage: bool, tally: StreamTally) -> None:
        named = [chunk for chunk in head if isinstance(chunk.get("model"), str)]
        self._from = b'"model":' + dumps(named[-1]["model"]) if named else None
        self._to = b'"model":' + dumps(model)
        self._strip_usage = not include_usage
        self._tally = tally
        # An event's bytes beyond its text: "data: ", the chunk's JSON around the delta, the blank line.
        self._overhead = min((len(dumps(chunk)) + 8 - completion_chars(chunk) for chunk in named), default=0)

    def __call__(self, raw: bytes) -> bytes | None:
        events = raw.count(b"\n\n")
        if (
            self._from is None
            or raw.count(b"\n") != 2 * events  # one line an event
            or raw.count(b"data: {") != events
            or raw.count(b"}\n\n") != events  # of one JSON object
            or raw.count(self._from) != events  # of this answer's model
            or raw.count(b'"finish_reason"') != raw.count(b'"finish_reason":null')
            or raw.count(b'"usage"') != raw.count(b'"usage":null')
            or b'"error"' in raw
        ):
            return None
        relayed = raw.replace(self._from, self._to)
        if self._strip_usage and b'"usage"' in relayed:
            relayed = relayed.replace(b',"usage":null', b"")
            if b'"usage"' in relayed:
                return None
        self._tally.completion_chars += max(0, len(raw) - events * self._overhead)
        return relayed
