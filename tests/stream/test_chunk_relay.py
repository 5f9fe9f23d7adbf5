"""The OpenAI dialect's byte path (stream/_openai.py `ChunkRelay`, issue 18): ordinary chunks go out as the
provider wrote them, with Triage's model name; everything else is refused (None) and decoded as before. What the
client reads is the same either way: the relayed bytes parse to exactly the chunks the decoding path would send."""

from __future__ import annotations

import json
from typing import Any

import hypothesis
import hypothesis.strategies as st

from triage._json import loads
from triage.stream import StreamTally
from triage.stream._openai import ChunkRelay

UPSTREAM = "gpt-4o-mini-2024-07-18"


def chunk(content: str | None = None, *, finish: str | None = None, usage: Any = None, model: str = UPSTREAM,
          usage_field: bool = True, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    data: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
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
    relayed = r(sse(*chunks))
    assert relayed is not None
    assert decoded(relayed) == decoding_path(chunks, include_usage=True)
    assert UPSTREAM.encode() not in relayed
    # The usage estimate's base: about the text the chunks carried (9 characters), by length.
    assert abs(tally.completion_chars - 9) <= 3


def test_usage_null_is_dropped_when_the_client_did_not_ask() -> None:
    r, _ = relay(include_usage=False)
    chunks = [chunk("lo"), chunk("!")]
    relayed = r(sse(*chunks))
    assert relayed is not None and b"usage" not in relayed
    assert decoded(relayed) == decoding_path(chunks, include_usage=False)


def test_reads_that_need_decoding_are_refused() -> None:
    r, _ = relay()
    ordinary = sse(chunk("a"))
    refused = {
        "a choice ends": sse(chunk(finish="stop")),
        "usage reported": sse({**chunk(), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        "an error": sse({"error": {"message": "overloaded"}}),
        "the error event": b"event: error\n" + ordinary,
        "an event over two lines": b'data: {"id":"x",\ndata: "model":"' + UPSTREAM.encode() + b'"}\n\n',
        "a keep-alive comment": b": ping\n\n" + ordinary,
        "the end marker": ordinary + b"data: [DONE]\n\n",
        "broken JSON": ordinary + b"data: {not json\n\n",
        "another model": sse(chunk("a", model="other")),
        "another spelling": sse(chunk("a"), separators=(", ", ": ")),
        "a second model field": sse(chunk("a", meta={"model": UPSTREAM})),
    }
    for why, raw in refused.items():
        assert r(raw) is None, why
    assert r(ordinary) is not None


def test_usage_elsewhere_than_last_is_refused_when_it_must_be_dropped() -> None:
    r, _ = relay(include_usage=False)
    data = chunk("a", usage_field=False)
    leading = {"usage": None, **data}
    assert r(sse(leading)) is None
    assert relay(include_usage=True)[0](sse(leading)) is not None  # kept as sent when the client asked


def test_a_head_without_a_model_name_relays_nothing() -> None:
    head = [{"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}]
    r, _ = relay(head=head)
    assert r(sse(chunk("a"))) is None


@hypothesis.given(
    texts=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=6),
    include_usage=st.booleans(),
)
@hypothesis.settings(max_examples=200, deadline=None)
def test_relayed_bytes_decode_to_the_chunks_the_decoding_path_sends(texts: list[str], include_usage: bool) -> None:
    """Any text, quotes, escapes, `"model":"..."`, `data: {` and non-ASCII included: relayed or refused, never
    changed in meaning."""
    r, _ = relay(include_usage=include_usage)
    chunks = [chunk(text) for text in texts]
    relayed = r(sse(*chunks))
    if relayed is not None:
        assert decoded(relayed) == decoding_path(chunks, include_usage=include_usage)
