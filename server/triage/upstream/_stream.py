"""A model's streamed answer: the provider's SSE bytes decoded into chunk dicts, batched by network read, with the
idle (aiohttp's `sock_read`) and total timeouts enforced."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import aiohttp

from triage._exceptions import UpstreamError, UpstreamProtocolError, UpstreamTimeout
from triage._json import loads
from triage.upstream._errors import mapped_error
from triage.upstream._sse import SSEDecoder, SSEEvent

__all__ = ["Chunk", "ChunkBatches", "ModelStream", "Relay", "completion_chars"]

# One streamed chunk, as the provider sent it: {"id", "object", "model", "choices": [{"delta": {...}}], ...}.
Chunk = dict[str, Any]

# A dialect's byte path (see `ModelStream.relayed`): given whole events as read, the bytes to send the client for
# the leading events it takes, and how many of the given bytes those were (0: none; the rest is decoded).
Relay = Callable[[bytes], tuple[bytes, int]]


def has_token(chunk: Chunk) -> bool:
    """Whether a chunk carries the answer's first token: content, a tool call, a refusal, or its end."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal") or choice.get("finish_reason"):
            return True
    return False


def completion_chars(chunk: Chunk) -> int:
    """The answer's text in one chunk, in characters: content and tool-call arguments (the usage estimate's base)."""
    chars = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            chars += len(content)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if arguments:
                chars += len(arguments)
    return chars


class ChunkBatches:
    """The provider's SSE stream as chunk dicts, batched by network read: the chunks that arrived together travel
    on together (one write to the client, not one per chunk, when a busy loop lets them pile up). Raw decoding:
    building the SDK's pydantic models for every chunk cost ~150 us each, twenty times a `json.loads`.

    An async iterator of its own rather than a generator under `ModelStream.batches()`: the two generator layers
    it replaces cost a few microseconds per upstream read of every answer (issue 18). Transport errors come out
    mapped (`mapped_error`); past `deadline` (time.monotonic) the next batch raises UpstreamTimeout; the idle
    bound is aiohttp's `sock_read`."""

    def __init__(self, response: aiohttp.ClientResponse, model: str, deadline: float = math.inf) -> None:
        self._response = response
        self._content = response.content
        self._model = model
        self._deadline = deadline
        self._decoder = SSEDecoder()
        self._pending: list[Chunk] | None = None  # a batch to hand out first (the head, after the first token)
        self.relay: Relay | None = None  # set by `ModelStream.relayed`
        self._unread = b""  # what the relay left of the last read, or what followed the first token in its read
        self.token_seen = False  # whether a chunk with the answer's first token has come out
        self._error: BaseException | None = None  # raised after the chunks before it went out
        self._done = False

    def __aiter__(self) -> ChunkBatches:
        return self

    def push_back(self, batch: list[Chunk]) -> None:
        """Hand `batch` out again, before anything read later."""
        self._pending = batch

    async def __anext__(self) -> list[Chunk] | bytes:  # bytes: only with a relay (`ModelStream.relayed`)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            if pending:
                return pending
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        model = self._model
        while not self._done:
            raw, self._unread = self._unread, b""
            if not raw:
                try:
                    raw = await self._content.readany()
                except Exception as exc:
                    error = mapped_error(exc, model)
                    if error is exc:
                        raise
                    raise error from exc
                if not raw:  # the end of the body
                    self._done = True
                    tail = [_parse_chunk(event, model) for event in self._decoder.flush() if event.data != b"[DONE]"]
                    if tail:
                        return tail
                    break
                if time.monotonic() > self._deadline:
                    raise UpstreamTimeout(f"model {model!r} did not finish within its total timeout", model=model)
            if self.relay is not None and self._decoder.idle:
                # The whole events of this read go to the relay; what it leaves (from the first event it will not
                # take, or a next event's start) is decoded on the next turn.
                whole = raw.rfind(b"\n\n") + 2
                if whole > 1:
                    relayed, used = self.relay(raw if whole == len(raw) else raw[:whole])
                    if used:
                        self._unread = raw[used:]
                        return relayed
            batch: list[Chunk] = []
            events = self._decoder.feed(raw)
            for i, event in enumerate(events):
                if event.data == b"[DONE]":
                    self._done = True
                    await _read_to_end(self._response)
                    break
                try:
                    chunk = _parse_chunk(event, model)
                    batch.append(chunk)
                    if not self.token_seen and has_token(chunk):
                        self.token_seen = True
                        if self._hold_back(events[i + 1 :]):
                            return batch
                except (UpstreamError, ValueError) as exc:
                    error = mapped_error(exc, model)
                    if error is not exc:
                        error.__cause__ = exc  # as `raise error from exc` would, also when raised later
                    if not batch:
                        raise error  # noqa: B904  (its __cause__ is set above)
                    self._error = error
                    return batch  # what came before a broken chunk is still the answer's
            if batch:
                return batch
        raise StopAsyncIteration

    def _hold_back(self, events: list[SSEEvent]) -> bool:
        """At the first token: give the events after it in this read back as bytes (with the next event's start),
        for the relay to take undecoded; at 256 streams a busy loop reads ~10 chunks before the first token.
        False (decode them now) when they are not plain one-line data events."""
        if any(event.event is not None or b"\n" in event.data for event in events):
            return False
        buffered = self._decoder.take_buffered()
        if buffered is None:
            return False
        self._unread = b"".join(b"data: " + event.data + b"\n\n" for event in events) + buffered
        return True


# How long to wait, after `[DONE]`, for the end of the body: it normally comes with it.
_END_OF_BODY_WAIT = 0.5


async def _read_to_end(response: aiohttp.ClientResponse) -> None:
    """Read on to the end of an answer's body, so its connection goes back to the pool. A provider that keeps the
    body open past `[DONE]`, or breaks it off there, costs that connection (closed on release), never the answer."""
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
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
    they arrived together (`batches()`). Iterate it once; always `close()` it."""

    def __init__(self, model: str, response: aiohttp.ClientResponse, batches: ChunkBatches, head: list[Chunk]) -> None:
        self.model = model
        self.head = head
        self._response = response
        self._batches = batches

    def batches(self) -> AsyncIterator[list[Chunk]]:
        """The chunks in the order they came, each batch what one network read brought (the first: all read up
        to the first token). The idle timeout is aiohttp's `sock_read` (the session's, set to `idle`: it re-arms
        on every read the socket makes anyway), the total is checked as each batch arrives: an `asyncio.timeout`
        per batch did both, at the cost of a timer per upstream read of every answer (issue 18)."""
        self._batches.push_back(self.head)
        return cast(AsyncIterator[list[Chunk]], self._batches)  # without a relay, only chunk lists

    def relayed(self, relay: Relay) -> AsyncIterator[list[Chunk] | bytes]:
        """`batches()`, except that the events `relay` takes, of each network read, come out as the bytes it made
        of them, undecoded: a dialect whose events are the provider's own, barely changed, sends most of an
        answer without parsing and re-encoding each chunk (~2 us a chunk, the largest share of Triage's own CPU
        per streamed answer at 256 streams; issue 18). The head, the end and anything `relay` refuses are chunks."""
        self._batches.push_back(self.head)
        self._batches.relay = relay
        return self._batches

    def close(self) -> None:
        """Let go of the answer's HTTP response. Not a coroutine: it never waits, so it also runs, whole, inside
        a cancelled task. A body read to its end hands the connection back to the pool; one cut short is closed,
        so the provider sees the cancel at once (aiohttp's `release` does both)."""
        self._response.release()

