"""An incremental decoder for a provider's SSE byte stream: a pure sync state machine (after httpx's LineDecoder
and openai-python's SSEDecoder), fed network chunks split anywhere, returning whole events.

Only what OpenAI-compatible providers send matters here: `data:` lines (joined with "\\n" when an event has several),
`event:` names, comments and blank lines. The cost of a chunk is proportional to its length.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEDecoder", "SSEEvent"]


class SSEEvent(NamedTuple):
    """One event (a tuple: made for every chunk of every answer, at a third of a frozen dataclass's cost)."""

    data: bytes
    event: str | None = None


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event: str | None = None

    @property
    def idle(self) -> bool:
        """Between events: nothing of a next event buffered (a read that ends with a blank line leaves it so)."""
        return not self._buffer and not self._data and self._event is None

    def take_buffered(self) -> bytes | None:
        """What is buffered toward the next event, handed back and cleared (the decoder is then idle), or None when
        that cannot be: in the middle of an event's lines."""
        if self._data or self._event is not None:
            return None
        buffered, self._buffer = self._buffer, b""
        return buffered

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._data and self._event is None and b"\r" not in buffer:
            # The common case, what OpenAI-compatible providers send: `data: {...}` events, "\n" line ends. Whole
            # events are split off in C; one that is not a lone `data: ` line goes the line-by-line way.
            parts = buffer.split(b"\n\n")
            self._buffer = parts.pop()  # what follows the last blank line: the next event's start, if anything
            for part in parts:
                if part[:6] == b"data: " and b"\n" not in part:
                    events.append(SSEEvent(part[6:]))
                else:
                    for line in part.split(b"\n"):
                        self._line(line, events)
                    self._line(b"", events)
            return events
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            self._line(line, events)
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """Events still buffered when the stream ends (a last event without its blank line)."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r"), events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:  # a blank line ends an event
            if self._data:
                events.append(SSEEvent(b"\n".join(self._data), self._event))
            self._data = []
            self._event = None
            return
        if line.startswith(b":"):
            return  # a comment: keep-alive pings
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
