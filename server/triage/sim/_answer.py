"""The simulator's answers on the wire: SSE chunks built by hand around per-request prefixes (it is the overhead
benchmark's baseline, so its hot path stays cheap), whole completions, and the faults tests ask for."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncGenerator
from functools import lru_cache
from typing import Any

from starlette.responses import Response, StreamingResponse

from triage._types import Receive, Scope, Send
from triage.sim._config import SimBehaviour
from triage.sim._content import VOCABULARY, Answer
from triage.sim._state import SimState

__all__ = [
    "SSE_HEADERS",
    "ChunkEncoder",
    "ClosingStreamingResponse",
    "HideStreamCuts",
    "complete_answer",
    "stream_answer",
]

_ids = itertools.count(1)


class _StreamCut(Exception):
    """Raised inside a response body on purpose: uvicorn then closes the connection mid-response."""


class HideStreamCuts(logging.Filter):
    # uvicorn logs every exception escaping the app with its traceback; a simulated cut is not a bug.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _StreamCut))


SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}

_DONE = b"data: [DONE]\n\n"

_MALFORMED = b"data: {not json\n\n"


@lru_cache(maxsize=8192)
def _json_str(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


class ChunkEncoder:
    """OpenAI's `chat.completion.chunk` events for one response, around a precomputed prefix."""

    def __init__(self, model: str, usage: bool, top_logprobs: int | None, logprob: float) -> None:
        self.completion_id = f"chatcmpl-sim{next(_ids)}"
        self.created = int(time.time())
        self.model = model
        self.top = b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s' % (
            self.completion_id.encode(),
            self.created,
            _json_str(model),
        )
        self.head = self.top + b',"choices":[{"index":0,"delta":'
        self.tail = b',"finish_reason":null}]' + (b',"usage":null' if usage else b"") + b"}\n\n"
        self.usage_tail = b',"usage":null}\n\n' if usage else b"}\n\n"
        self.top_logprobs = top_logprobs  # None: the request did not ask for logprobs
        self.logprob = logprob

    def role(self, answer: Answer) -> bytes:
        if answer.kind == "tool_call":
            call: dict[str, Any] = {"index": 0, "id": answer.tool_call_id, "type": "function"}
            call["function"] = {"name": answer.tool_name, "arguments": ""}
            delta = json.dumps({"role": "assistant", "content": None, "tool_calls": [call]}).encode()
            return self.head + delta + b',"logprobs":null' + self.tail
        return self.head + b'{"role":"assistant","content":""},"logprobs":null' + self.tail

    def piece(self, answer: Answer, index: int, text: str) -> bytes:
        if answer.kind == "tool_call":
            delta = b'{"tool_calls":[{"index":0,"function":{"arguments":' + _json_str(text) + b"}}]}"
            return self.head + delta + b',"logprobs":null' + self.tail
        logprobs = b"null" if self.top_logprobs is None else json.dumps(self.logprobs([text], index)).encode()
        return self.head + b'{"content":' + _json_str(text) + b'},"logprobs":' + logprobs + self.tail

    def finish(self, reason: str, usage: dict[str, int] | None) -> bytes:
        end = self.head + b'{},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]' + self.usage_tail
        if usage is not None:
            end += self.top + b',"choices":[],"usage":' + json.dumps(usage).encode() + b"}\n\n"
        return end + _DONE

    def logprobs(self, tokens: list[str], first_index: int = 0) -> dict[str, Any]:
        content = []
        for i, token in enumerate(tokens, first_index):
            # Alternatives are fixed words with strictly lower logprobs, so the chosen token is the most likely.
            alternatives = [
                (" " + VOCABULARY[(i * 31 + j * 17) % len(VOCABULARY)], self.logprob - j)
                for j in range(1, self.top_logprobs or 0)
            ]
            top = [
                {"token": t, "logprob": lp, "bytes": list(t.encode())}
                for t, lp in [(token, self.logprob), *alternatives]
            ]
            entry = {"token": token, "logprob": self.logprob, "bytes": list(token.encode())}
            content.append({**entry, "top_logprobs": top if self.top_logprobs else []})
        return {"content": content, "refusal": None}


def _fault_at(position: int | None, total: int) -> int | None:
    return None if position is None else min(position, total)


async def stream_answer(
    state: SimState,
    model: str,
    b: SimBehaviour,
    answer: Answer,
    enc: ChunkEncoder,
    usage: dict[str, int] | None,
    start: float,
) -> AsyncGenerator[bytes, None]:
    loop = asyncio.get_running_loop()
    pieces = answer.pieces
    n = len(pieces)
    interval = 1.0 / b.tokens_per_s if b.tokens_per_s > 0 else 0.0
    stall_at, malformed_at, cut_at = (_fault_at(x, n) for x in (b.stall_after, b.malformed_after, b.cut_after))
    state.active += 1
    epoch = state.epoch
    outcome = "errors"
    try:
        due = start + b.ttft_ms / 1000
        first = enc.role(answer)
        for i in range(n + 1):
            if i == stall_at:
                await asyncio.sleep(b.stall_s)
                due = max(due, loop.time())
            if i == malformed_at:
                yield _MALFORMED
            if i == cut_at:
                raise _StreamCut(f"simulated cut after {i} chunks")
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == n:
                break
            chunk = enc.piece(answer, i, pieces[i])
            yield first + chunk if i == 0 else chunk
            due += interval
        yield (first if n == 0 else b"") + enc.finish(answer.finish_reason, usage)
        if b.linger_s:
            await asyncio.sleep(b.linger_s)
        outcome = "completed"
    except (asyncio.CancelledError, GeneratorExit):
        outcome = "cancelled"
        raise
    finally:
        state.active -= 1
        state.end(model, outcome, epoch)


class ClosingStreamingResponse(StreamingResponse):
    def __init__(self, body: AsyncGenerator[bytes, None], headers: dict[str, str], media_type: str) -> None:
        super().__init__(body, headers=headers, media_type=media_type)
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A generator cancelled while suspended at `yield` (during `send`) is closed now, not at GC, so its
            # `finally` counts the cancellation at once.
            await self._body.aclose()


def _message(answer: Answer) -> dict[str, Any]:
    if answer.kind == "tool_call":
        function = {"name": answer.tool_name, "arguments": "".join(answer.pieces)}
        call = {"id": answer.tool_call_id, "type": "function", "function": function}
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}
    return {"role": "assistant", "content": "".join(answer.pieces), "refusal": None}


async def complete_answer(
    state: SimState, model: str, b: SimBehaviour, answer: Answer, enc: ChunkEncoder, usage: dict[str, int], start: float
) -> Response:
    state.active += 1
    epoch = state.epoch
    try:
        n = len(answer.pieces)
        delay = b.ttft_ms / 1000 + (n / b.tokens_per_s if b.tokens_per_s > 0 else 0.0)
        delay += b.stall_s if b.stall_after is not None else 0.0
        await asyncio.sleep(max(0.0, start + delay - asyncio.get_running_loop().time()))
        choice = {"index": 0, "message": _message(answer), "logprobs": None, "finish_reason": answer.finish_reason}
        if enc.top_logprobs is not None and answer.kind == "text":
            choice["logprobs"] = enc.logprobs(answer.pieces)
        completion = {"id": enc.completion_id, "object": "chat.completion", "created": enc.created, "model": model}
        body = json.dumps({**completion, "choices": [choice], "usage": usage}).encode()
        if b.malformed_after is not None:
            body = _MALFORMED[6:-2]
        if b.cut_after is not None:
            # Announce the full length, send half, drop the connection: the client sees a truncated body.
            async def truncated() -> AsyncGenerator[bytes, None]:
                yield body[: len(body) // 2]
                raise _StreamCut("simulated cut")

            state.end(model, "errors", epoch)
            headers = {"content-length": str(len(body))}
            return ClosingStreamingResponse(truncated(), headers=headers, media_type="application/json")
        state.end(model, "completed", epoch)
        return Response(body, media_type="application/json")
    finally:
        state.active -= 1
