"""An incremental JSON parser for structured answers: fed the model's text chunk by chunk, it keeps its state
between chunks (so a chunk costs time in proportion to its own length, never to the document's) and returns the
field patches of `_patch` as values take shape.

    parser = IncrementalJSONParser(schema=SchemaValidator(schema))   # schema optional
    for chunk in deltas:
        for patch in parser.feed(chunk): ...      # already coalesced: one add/append per string per chunk
    parser.finish()                               # raises if the document is incomplete

What it accepts is exactly RFC 8259 JSON, as `json.loads` does, except that NaN, Infinity and -Infinity (which
`json.loads` takes by default) are rejected. A lone surrogate escape ("\\ud800") is kept as `json.loads` keeps it.
Malformed input raises `StructuredOutputError` with `offset` (in characters from the start of the document) at the
offending character and `path` at the innermost open value; after an error every call raises it again. Nesting
deeper than `max_depth` is refused too: the parser itself keeps its stack in a list, but copying `value` and
checking a schema recurse.

`value` is the document so far, as partial-json-parser completes the same prefix, with these differences: a
number is absent until a character after it shows that it is complete (partial-json-parser gives "1." as 1 and "12"
as 12, which the next chunk may turn into 12.5 or 123), as are true/false/null until their last letter; a string
does not yet show an escape that is cut off, nor a high surrogate escape whose low half may still follow
(partial-json-parser shows a lone high surrogate there); an unfinished root number or literal is None.
partial-json-parser also strips the prefix, so an open string loses its trailing whitespace there ('["a ' gives
["a"]); here it keeps it.
"""

from __future__ import annotations

from typing import Any

from triage._exceptions import StructuredOutputError
from triage.stream.structured._grammar import (
    AFTER,
    ARRAY_FIRST,
    COLON,
    END,
    EXPECTED,
    FAILED,
    KEY,
    KEY_ESCAPE,
    KEY_FIRST,
    KEY_NEXT,
    LITERAL,
    LITERALS,
    NUMBER,
    NUMBER_CHARS,
    NUMBER_FORM,
    START,
    STR_ESCAPE,
    STRING,
    STRING_SPECIAL,
    VALUE,
    WHITESPACE,
    EscapeError,
    bad_number_index,
    read_escape,
)
from triage.stream.structured._patch import JSONValue, Patch, copy_json, escape_token
from triage.stream.structured._schema import Schema, SchemaValidator

__all__ = ["IncrementalJSONParser"]


class IncrementalJSONParser:
    """Parses one JSON document fed in chunks; see the module docstring. Not thread-safe; one per answer."""

    def __init__(self, schema: SchemaValidator | None = None, *, max_depth: int = 512) -> None:
        self._validator = schema
        self._max_depth = max_depth
        self._state = START
        self._offset = 0  # characters consumed by earlier chunks
        self._error: StructuredOutputError | None = None
        self._root: Any = None
        # Open containers, innermost last: (container, path, is_object, own schema, schema to look members up in).
        self._stack: list[tuple[Any, str, bool, Schema | None, Any]] = []
        self._top: Any = None  # the innermost open container, its path and kind: copies of _stack[-1]
        self._top_path = ""
        self._top_is_object = False
        self._key = ""  # the key of the member being parsed
        # The value being parsed (a string, number or literal): its path, the path its `add` names, its schema.
        self._path = ""
        self._add_path = ""
        self._schema: Schema | None = None
        self._added = False  # whether the open string's `add` has gone out
        self._parts: list[str] = []  # the open string's text, one piece per chunk
        self._buf: list[str] = []  # the open string's text within the current chunk
        self._key_buf: list[str] = []
        self._escape = ""  # the characters after the backslash of an escape cut by a chunk boundary
        self._high = 0  # a high surrogate escape waiting for its low half
        self._token = ""  # the number so far, or the literal being matched
        self._token_start = 0
        self._literal: JSONValue = None
        self._matched = 0  # letters of the literal matched so far

    @property
    def value(self) -> JSONValue:
        """The document so far (a copy; see the module docstring for how it compares to partial-json-parser)."""
        if self._state in (STRING, STR_ESCAPE):
            text = "".join(self._parts)
            self._parts[:] = [text] if text else []
            if not self._stack:
                return text
            if self._top_is_object:
                self._top[self._key] = text
            else:
                self._top[-1] = text
        copied: JSONValue = copy_json(self._root)
        return copied

    @property
    def done(self) -> bool:
        """Whether the root value is complete."""
        return self._state == END

    def feed(self, chunk: str) -> list[Patch]:
        """Parse the next chunk; the patches it completes, coalesced. Raises StructuredOutputError."""
        if self._error is not None:
            raise self._error
        out: list[Patch] = []
        try:
            self._feed(chunk, out)
        except StructuredOutputError as exc:
            self._error = exc
            self._state = FAILED  # the chunk's local state is lost; the tree holds what was parsed
            raise
        self._offset += len(chunk)
        return out

    def finish(self) -> list[Patch]:
        """End of input: completes a root number, or raises StructuredOutputError if the document is incomplete."""
        if self._error is not None:
            raise self._error
        out: list[Patch] = []
        try:
            if self._state == NUMBER and not self._stack:
                self._state = self._end_number(out, 0)
            if self._state != END:
                what = "empty document" if self._state == START else "incomplete JSON document"
                in_value = self._state in (STRING, STR_ESCAPE, NUMBER, LITERAL)
                raise self._fail(f"{what}: expected {EXPECTED[self._state]}", 0, in_value=in_value)
        except StructuredOutputError as exc:
            self._error = exc
            raise
        return out

    # -- the scanner -----------------------------------------------------------------------------------------------

    def _feed(self, chunk: str, out: list[Patch]) -> None:
        i = 0
        n = len(chunk)
        buf = self._buf
        state = self._state
        while i < n:
            if state == STRING:
                # Plain text runs are sliced whole: the regex finds the next '"', '\\' or control character.
                m = STRING_SPECIAL.search(chunk, i)
                if m is None:
                    if self._high:
                        self._flush_high(buf)
                    buf.append(chunk[i:] if i else chunk)
                    break
                j = m.start()
                if j > i:
                    if self._high:
                        self._flush_high(buf)
                    buf.append(chunk[i:j])
                c = chunk[j]
                if c == '"':
                    state = self._close_string(out, j)
                elif c == "\\":
                    self._escape = ""
                    state = STR_ESCAPE
                else:
                    raise self._fail(f"control character {c!r} in a string; it must be escaped", j, in_value=True)
                i = j + 1
            elif state == KEY:
                m = STRING_SPECIAL.search(chunk, i)
                j = n if m is None else m.start()
                if j > i:
                    if self._high:
                        self._flush_high(self._key_buf)
                    self._key_buf.append(chunk[i:j])
                if m is None:
                    break
                c = chunk[j]
                if c == '"':
                    if self._high:
                        self._flush_high(self._key_buf)
                    self._key = "".join(self._key_buf)
                    state = COLON
                elif c == "\\":
                    self._escape = ""
                    state = KEY_ESCAPE
                else:
                    raise self._fail(f"control character {c!r} in a key; it must be escaped", j)
                i = j + 1
            elif state == NUMBER:
                # A number ends at the first character that cannot be part of one; `NUMBER_FORM` then checks it.
                j = NUMBER_CHARS.match(chunk, i).end()  # type: ignore[union-attr]  # '*' always matches
                self._token += chunk[i:j]
                i = j
                if i < n:
                    state = self._end_number(out, i)
            elif state == LITERAL:
                state, i = self._match_literal(out, chunk, i)
            elif state == STR_ESCAPE or state == KEY_ESCAPE:
                in_string = state == STR_ESCAPE
                i = self._read_escape(chunk, i, buf if in_string else self._key_buf, in_string)
                if not self._escape:
                    state = STRING if in_string else KEY
            else:
                c = chunk[i]
                i += 1
                if c in WHITESPACE:
                    continue
                if state == AFTER:
                    if c == ",":
                        state = KEY_NEXT if self._top_is_object else VALUE
                    elif c == ("}" if self._top_is_object else "]"):
                        state = self._close_container(out, i - 1)
                    else:
                        closer = "}" if self._top_is_object else "]"
                        raise self._fail(f"expected ',' or {closer!r}, got {c!r}", i - 1)
                elif state == VALUE or state == ARRAY_FIRST or state == START:
                    if c == '"':
                        self._start_value()
                        self._attach("")
                        self._added = False
                        state = STRING
                    elif c == "{" or c == "[":
                        state = self._open_container(out, c == "{", i - 1)
                    elif c == "-" or "0" <= c <= "9":
                        self._start_value()
                        self._token = ""
                        self._token_start = self._offset + i - 1
                        state = NUMBER
                        i -= 1
                    elif c in LITERALS:
                        self._start_value()
                        self._token, self._literal = LITERALS[c]
                        self._token_start = self._offset + i - 1
                        self._matched = 0
                        state = LITERAL
                        i -= 1
                    elif c == "]" and state == ARRAY_FIRST:
                        state = self._close_container(out, i - 1)
                    else:
                        raise self._fail(f"expected {EXPECTED[state]}, got {c!r}", i - 1)
                elif state == KEY_FIRST or state == KEY_NEXT:
                    if c == '"':
                        self._key_buf.clear()
                        state = KEY
                    elif c == "}" and state == KEY_FIRST:
                        state = self._close_container(out, i - 1)
                    else:
                        raise self._fail(f"expected {EXPECTED[state]}, got {c!r}", i - 1)
                elif state == COLON:
                    if c != ":":
                        raise self._fail(f"expected ':' after key {self._key!r}, got {c!r}", i - 1)
                    state = VALUE
                else:  # END
                    raise self._fail(f"extra data after the JSON document: {c!r}", i - 1)
        if state == STRING or state == STR_ESCAPE:
            self._flush_string(out)
        self._state = state

    def _fail(self, message: str, index: int, *, in_value: bool = False) -> StructuredOutputError:
        """An error at character `index` of the current chunk; `path` names the value or container it is in."""
        offset = self._offset + index
        path = self._path if in_value else (self._top_path if self._stack else "")
        return StructuredOutputError(f"{message} (offset {offset}, path {path or '/'!r})", path=path, offset=offset)

    # -- values ----------------------------------------------------------------------------------------------------

    def _start_value(self) -> None:
        """Find the path (and schema) of the value that starts here."""
        if not self._stack:
            self._path = self._add_path = ""
            self._schema = self._validator.schema if self._validator is not None else None
            return
        top_path = self._top_path
        if self._top_is_object:
            key: str | int = self._key
            self._path = self._add_path = top_path + "/" + escape_token(self._key)
        else:
            key = len(self._top)
            self._path = top_path + "/" + str(key)
            self._add_path = top_path + "/-"
        if self._validator is not None:
            self._schema = self._validator.child(self._stack[-1][4], key)

    def _attach(self, value: Any) -> None:
        if not self._stack:
            self._root = value
        elif self._top_is_object:
            self._top[self._key] = value
        else:
            self._top.append(value)

    def _complete(self, value: Any, offset: int) -> int:
        """A string, number or literal is complete; check it. Returns the next state."""
        if self._validator is not None:
            if not self._stack:
                self._validator.check_document(value, offset=offset)
                return END
            if self._schema is not None:
                self._validator.check(value, self._schema, self._path, offset=offset)
        return AFTER if self._stack else END

    def _flush_string(self, out: list[Patch]) -> None:
        buf = self._buf
        text = (buf[0] if len(buf) == 1 else "".join(buf)) if buf else ""
        buf.clear()
        if not self._added:
            out.append({"op": "add", "path": self._add_path, "value": text})
            self._added = True
        elif text:
            out.append({"op": "append", "path": self._path, "value": text})
        if text:
            self._parts.append(text)

    def _close_string(self, out: list[Patch], index: int) -> int:
        if self._high:
            self._flush_high(self._buf)
        self._flush_string(out)
        parts = self._parts
        text = (parts[0] if len(parts) == 1 else "".join(parts)) if parts else ""
        parts.clear()
        if not self._stack:
            self._root = text
        elif self._top_is_object:
            self._top[self._key] = text
        else:
            self._top[-1] = text
        out.append({"op": "done", "path": self._path})
        return self._complete(text, self._offset + index)

    def _end_number(self, out: list[Patch], index: int) -> int:
        token = self._token
        m = NUMBER_FORM.fullmatch(token)
        if m is None:
            bad = bad_number_index(token)
            raise self._fail(f"invalid number {token!r}", self._token_start - self._offset + bad, in_value=True)
        value = float(token) if m.group(1) or m.group(2) else int(token)
        return self._scalar(out, value, index)

    def _scalar(self, out: list[Patch], value: JSONValue, index: int) -> int:
        self._attach(value)
        out.append({"op": "add", "path": self._add_path, "value": value})
        return self._complete(value, self._offset + index)

    def _match_literal(self, out: list[Patch], chunk: str, i: int) -> tuple[int, int]:
        word, matched = self._token, self._matched
        take = chunk[i : i + len(word) - matched]
        want = word[matched : matched + len(take)]
        if take != want:
            bad = next(k for k in range(len(take)) if take[k] != want[k])
            raise self._fail(f"invalid literal: expected {word!r}", i + bad, in_value=True)
        self._matched = matched = matched + len(take)
        i += len(take)
        if matched < len(word):
            return LITERAL, i
        return self._scalar(out, self._literal, i - 1), i

    # -- strings ---------------------------------------------------------------------------------------------------

    def _flush_high(self, target: list[str]) -> None:
        # A high surrogate not followed by its low half stays a lone code point, as in json.loads.
        target.append(chr(self._high))
        self._high = 0

    def _read_escape(self, chunk: str, i: int, target: list[str], in_string: bool) -> int:
        """Continue the escape after a backslash; returns the index after what it used. `_escape` becomes "" once
        the escape is complete."""
        try:
            i, self._escape, self._high = read_escape(chunk, i, self._escape, self._high, target)
        except EscapeError as exc:
            raise self._fail(exc.message, exc.index, in_value=in_string) from None
        return i

    # -- containers ------------------------------------------------------------------------------------------------

    def _open_container(self, out: list[Patch], is_object: bool, index: int) -> int:
        if len(self._stack) >= self._max_depth:
            raise self._fail(f"nesting deeper than {self._max_depth} levels", index)
        self._start_value()
        container: Any = {} if is_object else []
        self._attach(container)
        path = self._path
        if self._stack or not is_object:  # the client's document starts as {}: a root object needs no add
            out.append({"op": "add", "path": self._add_path, "value": {} if is_object else []})
        schema = self._schema
        lookup = None
        if self._validator is not None:
            lookup = self._validator.enter(schema, "object" if is_object else "array")
        self._stack.append((container, path, is_object, schema, lookup))
        self._top, self._top_path, self._top_is_object = container, path, is_object
        return KEY_FIRST if is_object else ARRAY_FIRST

    def _close_container(self, out: list[Patch], index: int) -> int:
        container, path, _, schema, lookup = self._stack.pop()
        out.append({"op": "done", "path": path})
        if self._stack:
            self._top, self._top_path, self._top_is_object = self._stack[-1][:3]
        validator = self._validator
        if validator is not None:
            offset = self._offset + index
            if not self._stack:
                validator.check_document(container, offset=offset)
            elif schema is not None:
                # Members were checked as they completed: check only the container's own keywords if possible.
                shallow = validator.shallow(lookup) if lookup is not None else None
                validator.check(container, shallow if shallow is not None else schema, path, offset=offset)
        return AFTER if self._stack else END
