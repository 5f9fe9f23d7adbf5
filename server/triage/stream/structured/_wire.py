"""The structured stream on the wire: the field patches of `_patch`, in an encoding that costs about what the JSON
itself costs, and the reference decoder that turns it back into those patches.

One JSON-Patch object per 4-character chunk costs ~12x the JSON it carries (DESIGN.md, "Wire size"). This
encoding drops what the client can work out for itself: every patch of a streamed document happens at its open
end, so a client that keeps the stack of values still open knows where the next one goes. Paths are never sent:
a member's key is sent once, when the member appears, and an array element needs none.

A `patch` event's `data` is one JSON value:

- a string S: **append** S to the open string (the value the previous add or append was about);
- a positive integer N: **done**, N times: the N innermost open values are complete, innermost first;
- an array: a **batch**, whose elements (items) apply in order; an item is a string or an integer as above, or
  - `[V]`: **push** V onto the open array (`add .../-`),
  - `[K, V]`: **set** member K of the open object to V (`add .../K`).

  V is `{}` or `[]` for a container (its members follow), the text so far of a string (often "", more follows
  by appends), or the final value of a number, true, false or null. A container or string that V adds becomes
  the open value until its done; a number, true, false or null is complete at once and gets no done.

The stack of open values starts as the document `{}` at path "" (the client's start, which an object answer fills
in); an answer that is not an object begins with a push `[V]` against that untouched `{}`, which replaces the
document (`add ""`). The root's done, the last item of a complete answer, empties the stack.

Example: `{"title": "Tea", "steps": ["Boil", "Steep"], "n": 2}` streamed in three reads could go out as

    event: patch            data: [["title","Te"]]           add /title "Te"
    event: patch            data: "a"                        append /title "a"
    event: patch            data: [1,["steps",[]],["Boil"],1,["Steep"],2,["n",2],1]
                            done /title, add /steps [], add /steps/- "Boil", done /steps/0, add /steps/- "Steep",
                            done /steps/1, done /steps, add /n 2, done ""

`WireEncoder` (one per answer) turns the patches of each upstream read into one event's data; `WireDecoder` (one
per stream, in the client) turns each event's data back into patches, which `apply_patch` applies as before:
applying them in order to `{}` still yields `json.loads` of the model's text. Within one event the encoder merges
the appends to one string (and an add of a string with its appends), as `coalesce` does, so decoding gives
exactly the coalesced patches of that event's chunks.

Numbers travel as JSON numbers: an integer of any size exactly (as `json` writes it), a float as its shortest
repr; one too large for a double (`1e400`, infinite to `json.loads`) as `1e999`. Strings that hold a lone
surrogate (an escape `json.loads` keeps) are written with ASCII escapes, since UTF-8 cannot carry them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from triage._exceptions import StructuredOutputError
from triage._json import dumps
from triage.stream.structured._patch import JSONValue, Patch, escape_token

__all__ = ["WireDecoder", "WireEncoder"]

# What an open value on the stack is.
_OBJECT, _ARRAY, _STRING = 0, 1, 2


def _kind(value: object) -> int | None:
    """The stack kind of a value that stays open after its add; None for a complete one."""
    if isinstance(value, str):
        return _STRING
    if isinstance(value, dict):
        return _OBJECT
    if isinstance(value, list):
        return _ARRAY
    return None


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~") if "~" in token else token


_string = dumps  # a lone surrogate goes as an ASCII escape (see triage._json.dumps)


def _value(value: JSONValue) -> bytes:
    if isinstance(value, float) and not math.isfinite(value):
        # json.loads reads "1e400" as inf; JSON has no infinity, but "1e999" reads back as one (JS: Infinity).
        if value != value:
            raise StructuredOutputError("NaN is not JSON", path="")
        return b"1e999" if value > 0 else b"-1e999"
    return dumps(value)  # integers beyond 64 bits exactly, as json writes them


class WireEncoder:
    """Patches in (the parser's, in its order), one event's `data` out. Pure and sync; one per answer."""

    def __init__(self) -> None:
        # Open values, innermost last: [path, kind, elements pushed so far (arrays)]. The root {} is open at start.
        self._stack: list[list[Any]] = [["", _OBJECT, 0]]
        self._fresh = True  # nothing encoded yet: the root {} is still the client's untouched start

    def encode(self, patches: Iterable[Patch]) -> bytes:
        """The `data` of one `patch` event for `patches` (b"" for none). Raises StructuredOutputError for a patch
        that is not at the open end of the document (the parser never emits one)."""
        stack = self._stack
        if isinstance(patches, list) and len(patches) == 1:
            # Most events of a long answer: one chunk of one string's text.
            only = patches[0]
            value = only.get("value")
            top = stack[-1] if stack else None
            if only["op"] == "append" and top and top[1] == _STRING and top[0] == only["path"] \
                    and isinstance(value, str):
                return _string(value)
        items: list[bytes] = []
        # The open string's text in this event, when the last item carries it (an add of it, or an append to it):
        # later appends join it, once, at the end.
        pieces: list[str] | None = None
        carrier = -1  # index of that item; its add's key prefix is kept in `head`
        head = b""
        dones = 0
        for patch in patches:
            op = patch["op"]
            path = patch["path"]
            if op == "append":
                top = stack[-1] if stack else None
                value = patch.get("value")
                if top is None or top[1] != _STRING or top[0] != path or not isinstance(value, str):
                    raise self._misplaced(patch)
                if dones:
                    items.append(str(dones).encode())
                    dones = 0
                if pieces is not None:
                    pieces.append(value)
                else:
                    pieces, carrier, head = [value], len(items), b""
                    items.append(b"")
                continue
            if pieces is not None:
                items[carrier] = self._carried(head, pieces)
                pieces = None
            if op == "done":
                if not stack or stack[-1][0] != path:
                    raise self._misplaced(patch)
                stack.pop()
                dones += 1
                self._fresh = False
                continue
            if op != "add":
                raise StructuredOutputError(f"unknown patch op {op!r}", path=path)
            if dones:
                items.append(str(dones).encode())
                dones = 0
            value = patch.get("value")
            if not stack:
                raise self._misplaced(patch)
            top = stack[-1]
            if self._fresh and path == "":
                stack.pop()  # an answer that is not an object replaces the client's {}
                own, prefix = "", b"["
            elif top[1] == _OBJECT:
                parent = top[0]
                if len(path) <= len(parent) or path[len(parent)] != "/" or not path.startswith(parent):
                    raise self._misplaced(patch)
                own = path
                prefix = b"[" + _string(_unescape(path[len(parent) + 1 :])) + b","
            elif top[1] == _ARRAY:
                parent = top[0]
                index = str(top[2])
                if path != parent + "/-" and path != parent + "/" + index:
                    raise self._misplaced(patch)
                own = parent + "/" + index
                top[2] += 1
                prefix = b"["
            else:
                raise self._misplaced(patch)
            self._fresh = False
            kind = _kind(value)
            if kind is not None:
                stack.append([own, kind, len(value) if isinstance(value, list) else 0])
            if kind == _STRING:
                assert isinstance(value, str)
                pieces, carrier, head = [value], len(items), prefix
                items.append(b"")
            else:
                items.append(prefix + _value(value) + b"]")
        if pieces is not None:
            items[carrier] = self._carried(head, pieces)
        if dones:
            items.append(str(dones).encode())
        if not items:
            return b""
        if len(items) == 1 and items[0][:1] != b"[":
            return items[0]  # a lone append or done goes bare
        return b"[" + b",".join(items) + b"]"

    @staticmethod
    def _carried(head: bytes, pieces: list[str]) -> bytes:
        text = _string(pieces[0] if len(pieces) == 1 else "".join(pieces))
        return head + text + b"]" if head else text

    def _misplaced(self, patch: Patch) -> StructuredOutputError:
        where = self._stack[-1][0] if self._stack else None
        return StructuredOutputError(
            f"patch {patch['op']} at {patch['path']!r} is not at the open end of the document (open: {where!r})",
            path=patch["path"],
        )


class WireDecoder:
    """The reference decoder: each event's parsed `data` in, the patches it stands for out. One per stream."""

    def __init__(self) -> None:
        self._stack: list[list[Any]] = [["", _OBJECT, 0]]
        self._fresh = True

    def decode(self, data: JSONValue) -> list[Patch]:
        """The patches of one `patch` event (its `data` parsed as JSON). Raises StructuredOutputError for data that
        does not fit the stream so far."""
        out: list[Patch] = []
        for item in data if isinstance(data, list) else (data,):
            self._item(item, out)
        return out

    def _item(self, item: JSONValue, out: list[Patch]) -> None:
        stack = self._stack
        if isinstance(item, str):
            if not stack or stack[-1][1] != _STRING:
                raise self._error("an append with no open string")
            out.append({"op": "append", "path": stack[-1][0], "value": item})
        elif isinstance(item, int) and not isinstance(item, bool):
            if item < 1 or item > len(stack):
                raise self._error(f"{item} dones with {len(stack)} open values")
            for _ in range(item):
                out.append({"op": "done", "path": stack.pop()[0]})
        elif isinstance(item, list) and len(item) in (1, 2):
            value = item[-1]
            if not stack:
                raise self._error("an add after the document is complete")
            top = stack[-1]
            if len(item) == 2:
                key = item[0]
                if top[1] != _OBJECT or not isinstance(key, str):
                    raise self._error("a member [key, value] needs an open object and a string key")
                path = own = top[0] + "/" + escape_token(key)
            elif top[1] == _ARRAY:
                path, own = top[0] + "/-", top[0] + "/" + str(top[2])
                top[2] += 1
            elif self._fresh:
                stack.pop()
                path = own = ""
            else:
                raise self._error("a push [value] needs an open array")
            out.append({"op": "add", "path": path, "value": value})
            kind = _kind(value)
            if kind is not None:
                stack.append([own, kind, len(value) if isinstance(value, list) else 0])
        else:
            raise self._error(f"{item!r} is not an item (a string, a positive integer, [value] or [key, value])")
        self._fresh = False

    def _error(self, message: str) -> StructuredOutputError:
        path = self._stack[-1][0] if self._stack else ""
        return StructuredOutputError(f"structured stream: {message} (open: {path!r})", path=path)
