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
from triage.stream._answer import Answer
from triage.stream._relay import ChunkRelay

__all__ = ["DONE", "openai_chunks"]

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
