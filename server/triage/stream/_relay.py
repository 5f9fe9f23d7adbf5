"""The OpenAI dialect's byte path: most of an answer's events go to the client as the provider wrote them.

A provider's ordinary chunks differ from one another only in their delta: the same id, object, created time and
model before it, the same `"logprobs":null,"finish_reason":null}]` (and `"usage":null`) after it. So the relay
learns, from the first ordinary event it sees, the bytes before the delta (`prefix`) and after it (`suffix`), and
from then on an event that starts with that prefix and ends with that suffix is one more ordinary chunk: it goes
out as `prefix'` + its delta + `suffix'`, where `prefix'` names Triage's model and `suffix'` drops `"usage":null`
if the client did not ask for usage. Two comparisons an event, instead of a parse and a re-encode (or, before
this, a dozen scans of each read for what makes an event unusual: at 256 streams those scans cost as much as a
tenth of Triage's CPU).

An event that does not match (a finished choice, usage, an error, an `event:` line, a comment, `[DONE]`, logprobs
that differ from event to event, a provider whose chunks vary elsewhere) ends the relayed part of a read: it and
what follows it are decoded, checked and re-encoded as always, so an answer's end, its usage and a provider's
mid-stream error are handled as before. A provider whose first event cannot be learnt from is never relayed.
"""

from __future__ import annotations

import re

from triage._json import dumps, loads
from triage.stream._answer import StreamTally
from triage.upstream import Chunk

__all__ = ["ChunkRelay"]

_DATA = b"data: "
_DELTA = b'"delta":'
_EMPTY_CONTENT = len(b'{"content":""}')  # a delta's bytes beyond its text, for the usage estimate
# Reads whose first event is looked at to learn from: a provider whose events cannot be learnt from costs a parse
# per read this many times, then nothing.
_LOOKS = 3


class ChunkRelay:
    """A `Relay` (upstream/_stream.py) for one answer: `relay(raw)` takes the leading ordinary events of `raw`
    (whole events) and returns the bytes to send for them and how many bytes of `raw` they were (0: none)."""

    __slots__ = ("_from", "_looks", "_prefix", "_prefix_out", "_strip_usage", "_suffix", "_suffix_out", "_tally",
                 "_to")

    def __init__(self, model: str, head: list[Chunk], *, include_usage: bool, tally: StreamTally) -> None:
        named = next((chunk.get("model") for chunk in reversed(head) if isinstance(chunk.get("model"), str)), None)
        self._from = b'"model":' + dumps(named) if named is not None else b""
        self._to = b'"model":' + dumps(model)
        self._strip_usage = not include_usage
        self._tally = tally
        self._looks = 0  # reads whose first event was looked at to learn from (a few, then never again)
        self._prefix = self._suffix = self._prefix_out = self._suffix_out = b""

    def __call__(self, raw: bytes) -> tuple[bytes, int]:
        prefix, suffix = self._prefix, self._suffix
        if not prefix:
            if self._looks >= _LOOKS:
                return b"", 0
            self._looks += 1
            self._learn(raw[: raw.find(b"\n\n")])
            prefix, suffix = self._prefix, self._suffix
            if not prefix:
                return b"", 0
        start, end = len(prefix), -len(suffix)
        deltas: list[bytes] = []
        used = 0
        for event in raw.split(b"\n\n")[:-1]:  # (raw ends with a blank line: the last part is empty)
            if not (event.startswith(prefix) and event.endswith(suffix)) or len(event) < start - end:
                break
            # The delta goes on as it is: whatever else a provider put between prefix and suffix, the suffix's
            # `"finish_reason":null` (and usage) come last, and JSON's last key wins, decoded or relayed.
            deltas.append(event[start:end])
            used += len(event) + 2
        if not deltas:
            return b"", 0
        out = self._prefix_out + (self._suffix_out + b"\n\n" + self._prefix_out).join(deltas) + self._suffix_out
        self._tally.completion_chars += max(0, used - len(deltas) * (start - end + 2 + _EMPTY_CONTENT))
        return out + b"\n\n", used

    def _learn(self, event: bytes) -> None:
        """Prefix and suffix from one event, if it is an ordinary chunk of this answer's model written so that
        they say what they must: the model once, before the delta; the choice not finished, after it."""
        if not self._from or not event.startswith(_DATA) or event.count(_DELTA) != 1:
            return
        try:
            chunk = loads(event[len(_DATA):])
        except ValueError:
            return
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if (
            not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict)
            or not isinstance(choices[0].get("delta"), dict) or choices[0].get("finish_reason") is not None
            or chunk.get("usage") is not None or "error" in chunk
        ):
            return
        start = event.index(_DELTA) + len(_DELTA)
        end = _object_end(event, start)
        if end is None:
            return
        prefix, suffix = event[:start], event[end:]
        if prefix.count(self._from) != 1 or self._from in suffix or b'"finish_reason":null' not in suffix:
            return
        suffix_out = suffix
        if self._strip_usage and b'"usage"' in suffix:
            suffix_out = suffix.replace(b',"usage":null', b"")
            if b'"usage"' in suffix_out or b'"usage"' in prefix:
                return
        elif self._strip_usage and b'"usage"' in prefix:
            return
        self._prefix, self._suffix = prefix, suffix
        self._prefix_out, self._suffix_out = prefix.replace(self._from, self._to), suffix_out


# A JSON string (escapes included), or a brace: what finding an object's end needs to look at.
_STRING_OR_BRACE = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}]')


def _object_end(data: bytes, start: int) -> int | None:
    """Where the JSON object starting at `data[start]` ends (the index after its `}`), strings skipped; None if
    it is not an object or does not end. Once per answer, token by token (a byte-by-byte loop cost ~15 us)."""
    if data[start:start + 1] != b"{":
        return None
    depth = 0
    for token in _STRING_OR_BRACE.finditer(data, start):
        brace = token.group()
        if brace == b"{":
            depth += 1
        elif brace == b"}":
            depth -= 1
            if depth == 0:
                return token.end()
    return None
