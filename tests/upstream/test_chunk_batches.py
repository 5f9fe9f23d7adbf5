"""A streamed answer's reads, wherever the network splits them, through ChunkBatches and the OpenAI dialect's byte
path (issue 18): the head stops at the first token and hands what followed it in the same read to the relay; the
relay takes whole ordinary events; the rest is decoded. Whatever the split, the client reads the same chunks.

The provider here is a scripted body (`ScriptedResponse`): the reads' boundaries are what is under test, and a
real socket does not let a test choose them."""

from __future__ import annotations

import json
from typing import Any

import hypothesis
import hypothesis.strategies as st

from triage._json import loads
from triage.stream import Answer, StreamTally, openai_chunks
from triage.upstream._stream import ChunkBatches, ModelStream


class ScriptedContent:
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def readany(self) -> bytes:
        return self.reads.pop(0) if self.reads else b""

    async def read(self) -> bytes:
        return b""


class ScriptedResponse:
    def __init__(self, reads: list[bytes]) -> None:
        self.content = ScriptedContent(reads)

    def release(self) -> None:
        pass


def provider_events(texts: list[str]) -> tuple[bytes, list[dict[str, Any]]]:
    """An answer as OpenAI writes it (compact JSON, usage asked for), and its chunks."""
    top = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**top, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                "usage": None}

    chunks = [choice({"role": "assistant", "content": ""})]
    chunks += [choice({"content": text}) for text in texts]
    chunks += [choice({}, "stop"), {**top, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}]
    raw = b"".join(b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks)
    return raw + b"data: [DONE]\n\n", chunks


async def client_reads(reads: list[bytes]) -> tuple[list[dict[str, Any]], StreamTally, int]:
    response = ScriptedResponse(reads)
    batches = ChunkBatches(response, "cheap")  # type: ignore[arg-type]
    head: list[dict[str, Any]] = []
    async for batch in batches:  # as Upstreams.open_stream reads up to the first token
        assert isinstance(batch, list)
        head += batch
        if batches.token_seen:
            break
    stream = ModelStream("cheap", response, batches, head)  # type: ignore[arg-type]
    answer: Answer[None] = Answer(stream, lambda tally, status: None, None)
    sent = b"".join([data async for data in openai_chunks(answer, include_usage=True)])
    assert sent.endswith(b"data: [DONE]\n\n")
    events = [e[len(b"data: "):] for e in sent.split(b"\n\n") if e and e != b"data: [DONE]"]
    return [loads(e) for e in events], answer.tally, len(head)


@hypothesis.given(
    texts=st.lists(st.text(max_size=8), min_size=1, max_size=12),
    cuts=st.lists(st.floats(0, 1), max_size=8),
)
@hypothesis.settings(max_examples=300, deadline=None)
async def test_every_split_reads_the_same_chunks(texts: list[str], cuts: list[float]) -> None:
    raw, chunks = provider_events(texts)
    points = sorted({round(c * len(raw)) for c in cuts} - {0, len(raw)})
    reads = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    got, tally, _ = await client_reads(reads)
    assert got == [{**c, "model": "cheap"} for c in chunks]
    assert tally.usage is not None and tally.usage.completion_tokens == 7
    assert tally.finish_reason == "stop"


async def test_what_follows_the_first_token_in_its_read_is_relayed_undecoded() -> None:
    raw, chunks = provider_events(["Hel", "lo", ", ", "world"])
    got, tally, head = await client_reads([raw])  # one read: the head, the rest, the end
    assert got == [{**c, "model": "cheap"} for c in chunks]
    assert head == 2  # the role and the first token: the three chunks after them waited as bytes
    # Relayed chunks enter the usage estimate's base by length: the provider's usage wins when it reports one.
    assert tally.completion_chars > 0
