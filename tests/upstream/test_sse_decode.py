from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.upstream import SSEDecoder, SSEEvent

STREAM = (
    b': ping\r\n\r\n'
    b'data: {"a": 1}\n\n'
    b'event: error\ndata: {"error": {"message": "x"}}\n\n'
    b'data: line one\ndata: line two\n\n'
    b'data: {"snow": "\xe2\x9d\x84"}\r\n\r\n'
    b'data: [DONE]\n\n'
)
EXPECTED = [
    SSEEvent(b'{"a": 1}'),
    SSEEvent(b'{"error": {"message": "x"}}', "error"),
    SSEEvent(b"line one\nline two"),
    SSEEvent('{"snow": "❄"}'.encode()),
    SSEEvent(b"[DONE]"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, len(STREAM)])
def test_any_split_gives_the_same_events(size: int) -> None:
    decoder = SSEDecoder()
    events = []
    for i in range(0, len(STREAM), size):
        events += decoder.feed(STREAM[i : i + size])
    events += decoder.flush()
    assert events == EXPECTED


def test_a_last_event_without_its_blank_line_is_flushed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.flush() == [SSEEvent(b"tail")]


def _reference(stream: bytes) -> list[SSEEvent]:
    """The events of a whole stream, line by line (lines end in "\\n" or "\\r\\n"), for the split tests below."""
    events, data, name = [], [], None
    for line in stream.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            if data:
                events.append(SSEEvent(b"\n".join(data), name))
            data, name = [], None
        elif not line.startswith(b":"):
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"data":
                data.append(value)
            elif field == b"event":
                name = value.decode()
    if data:
        events.append(SSEEvent(b"\n".join(data), name))
    return events


_EVENTS = st.sampled_from([
    b'data: {"a": 1}\n\n', b"data: x\n\n\n", b"\n", b": ping\n\n", b"event: error\ndata: e\n\n",
    b"data: one\ndata: two\n\n", b"data:nospace\n\n", b"data: crlf\r\n\r\n", b'data: {"b": "\xe2\x9d\x84"}\n\n',
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENTS, max_size=12), st.lists(st.integers(0, 400), max_size=10))
def test_the_fast_path_and_the_line_path_agree_for_any_split(parts: list[bytes], cuts: list[int]) -> None:
    """Issue 18: whole `data: ` events are split off in C; mixed with events the line path reads, cut anywhere
    (inside a "\\n\\n", between "\\r" and "\\n"), the events are the same."""
    stream = b"".join(parts)
    bounds = [0, *sorted(c for c in set(cuts) if c < len(stream)), len(stream)]
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for a, b in itertools.pairwise(bounds):
        events += decoder.feed(stream[a:b])
    events += decoder.flush()
    assert events == _reference(stream)
