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
                yield batch  # relayed as the provider wrote it (ChunkRelay)
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


# Where a read stops being ordinary: the event holding one of these, and every event after it, are decoded.
_UNUSUAL = (b'"finish_reason":"', b'"usage":{', b'"error"', b"data: [DONE]", b"event:", b"\n\n:", b"\r")


class ChunkRelay:
    """The byte path of the OpenAI dialect: the ordinary chunks of a read go to the client as the provider wrote
    them, with `model` renamed to Triage's name for it (and `"usage":null` dropped when the client did not ask for
    usage), instead of being parsed and re-encoded one by one.

    Ordinary: every event one `data: {...}` line, naming the model exactly as the answer's head did (which also
    tells the provider's spelling: a provider that writes `"model": "x"` is never relayed), no choice ending, no
    usage reported, no error. The relay takes the leading ordinary events of a read and leaves the rest to be
    decoded, checked and re-encoded as before, so the end of an answer, its usage and a provider's mid-stream
    error are handled as they always were. Relayed text enters the usage estimate by length (less the head's
    per-event overhead); the estimate is used only when the provider reports no usage, and is marked so."""

    __slots__ = ("_from", "_head", "_overhead", "_strip_usage", "_tally", "_to")

    def __init__(self, model: str, head: list[Chunk], *, include_usage: bool, tally: StreamTally) -> None:
        self._head: list[Chunk] | None = head  # read at the first call: nothing on the way to the first token
        self._from = b""
        self._to = b'"model":' + dumps(model)
        self._overhead = 0
        self._strip_usage = not include_usage
        self._tally = tally

    def _learn(self, head: list[Chunk]) -> None:
        named = next((chunk for chunk in reversed(head) if isinstance(chunk.get("model"), str)), None)
        if named is not None:
            self._from = b'"model":' + dumps(named["model"])
            # An event's bytes beyond its text: "data: ", the chunk's JSON around the delta, the blank line.
            self._overhead = len(dumps(named)) + 8 - completion_chars(named)

    def __call__(self, raw: bytes) -> tuple[bytes, int]:
        if self._head is not None:
            self._learn(self._head)
            self._head = None
        if not self._from:
            return b"", 0
        size = len(raw)
        stop = size
        for marker in _UNUSUAL:
            at = raw.find(marker, 0, stop)
            if at >= 0:
                stop = raw.rfind(b"\n\n", 0, at + 2) + 2  # the end of the event before it
                if stop < 2:
                    return b"", 0
        part = raw if stop == size else raw[:stop]
        events = part.count(b"\n\n")
        if (
            part.count(b"\n") != 2 * events  # one line an event
            or part.count(b"data: {") != events
            or part.count(b"}\n\n") != events  # of one JSON object
            or part.count(self._from) != events  # of this answer's model
            or part.count(b'"finish_reason"') != part.count(b'"finish_reason":null')
            or part.count(b'"usage"') != part.count(b'"usage":null')
        ):
            return b"", 0
        relayed = part.replace(self._from, self._to)
        if self._strip_usage and b'"usage"' in relayed:
            relayed = relayed.replace(b',"usage":null', b"")
            if b'"usage"' in relayed:
                return b"", 0
        self._tally.completion_chars += max(0, stop - events * self._overhead)
        return relayed, stop
