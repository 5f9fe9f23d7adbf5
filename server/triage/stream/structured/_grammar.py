"""The JSON grammar as the incremental parser walks it (RFC 8259): its states, what each expects next, and the
character classes of strings, numbers and literals."""

from __future__ import annotations

import re

from triage.stream.structured._patch import JSONValue

__all__ = [
    "AFTER",
    "ARRAY_FIRST",
    "COLON",
    "END",
    "ESCAPES",
    "EXPECTED",
    "FAILED",
    "HEX",
    "KEY",
    "KEY_ESCAPE",
    "KEY_FIRST",
    "KEY_NEXT",
    "LITERAL",
    "LITERALS",
    "NUMBER",
    "NUMBER_CHARS",
    "NUMBER_FORM",
    "START",
    "STRING",
    "STRING_SPECIAL",
    "STR_ESCAPE",
    "VALUE",
    "WHITESPACE",
    "EscapeError",
    "bad_number_index",
    "read_escape",
]

# Parser states: where in the grammar the next character falls.
VALUE = 0  # a value must start (after ':' or after ',' in an array)
STRING = 1  # inside a string value
AFTER = 2  # after a member: ',' or the container's closer
KEY_FIRST = 3  # after '{': a key or '}'
KEY_NEXT = 4  # after ',' in an object: a key
KEY = 5  # inside a key
COLON = 6  # after a key
NUMBER = 7
LITERAL = 8
ARRAY_FIRST = 9  # after '[': a value or ']'
STR_ESCAPE = 10  # inside an escape of a string value
KEY_ESCAPE = 11  # inside an escape of a key
START = 12  # nothing but whitespace yet
END = 13  # the root is complete: only whitespace may follow
FAILED = 14  # an error was raised; `value` shows what was parsed before it

EXPECTED = {
    VALUE: "a value",
    STRING: "the rest of a string",
    AFTER: "',' or the end of the container",
    KEY_FIRST: "a key or '}'",
    KEY_NEXT: "a key",
    KEY: "the rest of a key",
    COLON: "':'",
    NUMBER: "the rest of a number",
    LITERAL: "the rest of a literal",
    ARRAY_FIRST: "a value or ']'",
    STR_ESCAPE: "the rest of an escape",
    KEY_ESCAPE: "the rest of an escape",
    START: "a value",
}

# The next character of a string that is not plain text: '"', '\\' or a control character (RFC 8259 section 7).
STRING_SPECIAL = re.compile(r'["\\\x00-\x1f]')
NUMBER_CHARS = re.compile(r"[0-9eE.+\-]*")
NUMBER_FORM = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
HEX = frozenset("0123456789abcdefABCDEF")
WHITESPACE = frozenset(" \t\n\r")
LITERALS: dict[str, tuple[str, JSONValue]] = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}


def bad_number_index(token: str) -> int:
    """The index of the first character that cannot continue a JSON number (len(token) if it ends too early)."""
    i, n = 0, len(token)
    if i < n and token[i] == "-":
        i += 1
    if i < n and token[i] == "0":
        i += 1
    elif i < n and "1" <= token[i] <= "9":
        while i < n and token[i].isdigit():
            i += 1
    else:
        return i
    if i < n and token[i] == ".":
        i += 1
        if not (i < n and token[i].isdigit()):
            return i
        while i < n and token[i].isdigit():
            i += 1
    if i < n and token[i] in "eE":
        i += 1
        if i < n and token[i] in "+-":
            i += 1
        if not (i < n and token[i].isdigit()):
            return i
        while i < n and token[i].isdigit():
            i += 1
    return i


class EscapeError(ValueError):
    """A malformed escape at `index` of the chunk."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def read_escape(chunk: str, i: int, escape: str, high: int, target: list[str]) -> tuple[int, str, int]:
    """Continue an escape from `chunk[i]`, right after its backslash or within a `\\u` escape that a chunk boundary
    cut (`escape`: what of it came so far, "" at the backslash). Appends what it completes to `target`; `high` is a
    high surrogate escape still waiting for its low half (0: none). Returns the index after what it used, the escape
    still open ("" once complete) and the pending high surrogate. Raises EscapeError."""
    if not escape:
        c = chunk[i]
        if c != "u":
            if c not in ESCAPES:
                raise EscapeError(f"invalid escape '\\{c}'", i)
            if high:  # a high surrogate not followed by its low half stays a lone code point, as in json.loads
                target.append(chr(high))
                high = 0
            target.append(ESCAPES[c])
            return i + 1, "", high
        escape = "u"
        i += 1
    take = chunk[i : i + 5 - len(escape)]
    for k, c in enumerate(take):
        if c not in HEX:
            raise EscapeError(f"invalid \\u escape: {c!r} is not a hex digit", i + k)
    escape += take
    i += len(take)
    if len(escape) < 5:
        return i, escape, high
    code = int(escape[1:], 16)
    if high and 0xDC00 <= code <= 0xDFFF:
        target.append(chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)))
        return i, "", 0
    if high:
        target.append(chr(high))
        high = 0
    if 0xD800 <= code <= 0xDBFF:
        return i, "", code  # its low half may be the next escape
    target.append(chr(code))
    return i, "", 0
