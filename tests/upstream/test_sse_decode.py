from __future__ import annotations

import pytest

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
