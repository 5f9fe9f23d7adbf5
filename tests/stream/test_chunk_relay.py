"""The OpenAI dialect's byte path (stream/_relay.py `ChunkRelay`, issue 18): the leading ordinary chunks of a
read go out as the provider wrote them, with Triage's model name; from the first unusual event on, the read is left
to be decoded as before. What the client reads is the same either way: the relayed bytes parse to exactly the
chunks the decoding path would send."""

from __future__ import annotations

import json
from typing import Any

import hypothesis
import hypothesis.strategies as st

from triage._json import loads
from triage.stream import StreamTally
from triage.stream._relay import ChunkRelay

UPSTREAM = "gpt-4o-mini-2024-07-18"


def chunk(content: str | None = None, *, finish: str | None = None, usage: Any = None, model: str = UPSTREAM,
          usage_field: bool = True, choice_logprobs: bool = False, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    logprobs = {"content": [{"token": content, "logprob": -0.1}]} if choice_logprobs else None
    data: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
    if usage_field:
        data["usage"] = usage
    data.update(extra)
    return data


def sse(*chunks: dict[str, Any], separators: tuple[str, str] = (",", ":")) -> bytes:
    """Events as a provider writes them: compact JSON (OpenAI's and the simulator's spelling) unless told."""
    return b"".join(b"data: " + json.dumps(c, separators=separators).encode() + b"\n\n" for c in chunks)


def relay(*, include_usage: bool = True, head: list[dict[str, Any]] | None = None) -> tuple[ChunkRelay, StreamTally]:
    tally = StreamTally()
    return ChunkRelay("cheap", head or [chunk("Hel")], include_usage=include_usage, tally=tally), tally


def decoded(events: bytes) -> list[dict[str, Any]]:
    return [loads(event[len(b"data: "):]) for event in events.split(b"\n\n") if event]


def decoding_path(chunks: list[dict[str, Any]], *, include_usage: bool) -> list[dict[str, Any]]:
    """What openai_chunks sends for chunks it decodes: the model renamed, usage dropped unless asked for."""
    out = []
    for c in chunks:
        c = json.loads(json.dumps(c))
        if not include_usage:
            c.pop("usage", None)
        c["model"] = "cheap"
        out.append(c)
    return out


def test_ordinary_chunks_are_relayed_with_triages_model_name() -> None:
    r, tally = relay()
    chunks = [chunk("lo"), chunk(", wor"), chunk("ld")]
    raw = sse(*chunks)
    relayed, used = r(raw)
    assert used == len(raw)
    assert decoded(relayed) == decoding_path(chunks, include_usage=True)
    assert UPSTREAM.encode() not in relayed
    # The usage estimate's base: about the text the chunks carried (9 characters), by length.
    assert abs(tally.completion_chars - 9) <= 3


def test_usage_null_is_dropped_when_the_client_did_not_ask() -> None:
    r, _ = relay(include_usage=False)
    chunks = [chunk("lo"), chunk("!")]
    relayed, used = r(sse(*chunks))
    assert used and b"usage" not in relayed
    assert decoded(relayed) == decoding_path(chunks, include_usage=False)


def test_from_the_first_unusual_event_on_a_read_is_left_to_be_decoded() -> None:
    r, _ = relay()
    ordinary = sse(chunk("a"), chunk("b"))
    unusual = {
        "a choice ends": sse(chunk(finish="stop")),
        "usage reported": sse({**chunk(), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        "an error": sse({"error": {"message": "overloaded"}}),
        "the error event": b"event: error\n" + sse(chunk("c")),
        "the end marker": b"data: [DONE]\n\n",
        "a keep-alive comment": b": ping\n\n" + sse(chunk("c")),
        "a carriage return": sse(chunk("c")).replace(b"\n\n", b"\r\n\r\n"),
        "broken JSON": b"data: {not json\n\n",
        "logprobs": sse(chunk("c", choice_logprobs=True)),
    }
    for why, tail in unusual.items():
        relayed, used = r(ordinary + tail)
        assert used == len(ordinary), why
        assert decoded(relayed) == decoding_path([chunk("a"), chunk("b")], include_usage=True), why
        assert r(tail) == (b"", 0), why
    # A read whose first event the relay cannot learn from is decoded as a whole.
    refused = {
        "broken JSON": b"data: {not json\n\n" + ordinary,
        "an event over two lines": b'data: {"id":"x",\ndata: "model":"' + UPSTREAM.encode() + b'"}\n\n',
        "another model": sse(chunk("a", model="other")),
        "another spelling": sse(chunk("a"), separators=(", ", ": ")),
        "a second model field": sse(chunk("a", meta={"model": UPSTREAM})),
    }
    for why, raw in refused.items():
        assert relay()[0](raw) == (b"", 0), why


def test_usage_elsewhere_than_last_is_refused_when_it_must_be_dropped() -> None:
    r, _ = relay(include_usage=False)
    data = chunk("a", usage_field=False)
    leading = {"usage": None, **data}
    assert r(sse(leading)) == (b"", 0)
    assert relay(include_usage=True)[0](sse(leading))[1]  # kept as sent when the client asked


def test_a_head_without_a_model_name_relays_nothing() -> None:
    head = [{"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}]
    r, _ = relay(head=head)
    assert r(sse(chunk("a"))) == (b"", 0)


@hypothesis.given(
    texts=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=6),
    include_usage=st.booleans(),
    end=st.sampled_from(["", "stop", "usage"]),
)
@hypothesis.settings(max_examples=200, deadline=None)
def test_relayed_bytes_decode_to_the_chunks_the_decoding_path_sends(
    texts: list[str], include_usage: bool, end: str
) -> None:
    """Any text, quotes, escapes, `"model":"..."`, `data: {` and non-ASCII included, with or without an answer's
    end in the same read: what is relayed means what the decoding path would send, and only whole events are."""
    r, _ = relay(include_usage=include_usage)
    chunks = [chunk(text) for text in texts]
    if end == "stop":
        chunks.append(chunk(finish="stop"))
    elif end == "usage":
        chunks.append({**chunk(), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    raw = sse(*chunks)
    relayed, used = r(raw)
    taken = decoded(raw[:used])
    assert decoded(relayed) == decoding_path(taken, include_usage=include_usage)
    assert raw[:used] == sse(*chunks[: len(taken)])
