"""A model's streamed answer: the provider's SSE bytes decoded into chunk dicts, batched by network read, with the
idle (aiohttp's `sock_read`) and total timeouts enforced."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from triage._exceptions import UpstreamError, UpstreamProtocolError, UpstreamTimeout
from triage._json import loads
from triage.upstream._errors import mapped_error
from triage.upstream._sse import SSEDecoder, SSEEvent

__all__ = ["Chunk", "ModelStream", "decode_batches", "has_token"]

# One streamed chunk, as the provider sent it: {"id", "object", "model", "choices": [{"delta": {...}}], ...}.
Chunk = dict[str, Any]


def has_token(chunk: Chunk) -> bool:
    """Whether a chunk carries the answer's first token: content, a tool call, a refusal, or its end."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal") or choice.get("finish_reason"):
            return True
    return False


async def decode_batches(response: aiohttp.ClientResponse, model: str) -> AsyncIterator[list[Chunk]]:
    """The provider's SSE stream as chunk dicts, batched by network read: the chunks that arrived together travel
    on together (one write to the client, not one per chunk, when a busy loop lets them pile up). Raw decoding:
    building the SDK's pydantic models for every chunk cost ~150 us each, twenty times a `json.loads`."""
    decoder = SSEDecoder()
    async for raw in response.content.iter_any():
        batch: list[Chunk] = []
        for event in decoder.feed(raw):
            if event.data == b"[DONE]":
                await _read_to_end(response)
                if batch:
                    yield batch
                return
            try:
                batch.append(_parse_chunk(event, model))
            except (UpstreamError, ValueError):
                if batch:
                    yield batch  # what came before a broken chunk is still the answer's
                raise
        if batch:
            yield batch
    tail = [_parse_chunk(event, model) for event in decoder.flush() if event.data != b"[DONE]"]
    if tail:
        yield tail


# How long to wait, after `[DONE]`, for the end of the body: it normally comes with it.
_END_OF_BODY_WAIT = 0.5


async def _read_to_end(response: aiohttp.ClientResponse) -> None:
    """Read on to the end of an answer's body, so its connection goes back to the pool. A provider that keeps the
    body open past `[DONE]` costs that connection (closed on release), never the answer."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_END_OF_BODY_WAIT):
            await response.content.read()


def _parse_chunk(event: SSEEvent, model: str) -> Chunk:
    chunk = loads(event.data)
    if not isinstance(chunk, dict):
        raise UpstreamProtocolError(f"model {model!r} sent a chunk that is not a JSON object", model=model)
    error = chunk.get("error")
    if error is not None or event.event == "error":
        message = error.get("message") if isinstance(error, dict) else None
        raise UpstreamProtocolError(
            f"model {model!r} reported an error mid-stream: {str(message or 'unknown error')[:300]}", model=model
        )
    return chunk


class ModelStream:
    """A live streamed answer from one model, past its first token: chunk dicts in OpenAI's shape, in batches as
    they arrived together (`batches()`). Iterate it once; always `aclose()` it."""

    def __init__(
        self,
        model: str,
        response: aiohttp.ClientResponse,
        batches: AsyncIterator[list[Chunk]],
        head: list[Chunk],
        *,
        idle: float,
        deadline: float,
    ) -> None:
        self.model = model
        self.head = head
        self._response = response
        self._batches = batches
        self._idle = idle
        self._deadline = deadline

    async def batches(self) -> AsyncIterator[list[Chunk]]:
        """The chunks in the order they came, each batch what one network read brought (the first: all read up
        to the first token).

        The idle timeout is aiohttp's `sock_read` (the session's, set to `idle`: it re-arms on every read the
        socket makes anyway); the total is checked as each batch arrives. An `asyncio.timeout` per batch did both
        exactly, at the cost of a timer set and cancelled per upstream read of every answer (issue 18)."""
        if self.head:
            yield self.head
        batches = self._batches
        deadline = self._deadline
        while True:
            try:
                batch = await anext(batches)
            except StopAsyncIteration:
                return
            except Exception as exc:
                error = mapped_error(exc, self.model)
                if error is exc:
                    raise
                raise error from exc
            if time.monotonic() > deadline:
                raise UpstreamTimeout(f"model {self.model!r} did not finish within its total timeout", model=self.model)
            yield batch

    async def aclose(self) -> None:
        # A body read to its end hands the connection back to the pool; one cut short is closed, so the provider
        # sees the cancel at once (aiohttp's `release` does both).
        self._response.release()
