"""Field patches: how a structured answer travels to the browser while it is still being written.

The UI stream sends them in `patch` events, compactly encoded (`_wire`: no paths, a member's key once; its
`WireDecoder` gives these patches back). A client keeps a document that starts as `{}` and applies the patches in
order; after the last one the document equals `json.loads` of the model's full JSON text. This module is
the reference for every applier (the browser's JS one follows `apply_patch` below line by line).

A patch is a JSON object with `op`, `path` and, for `add` and `append`, `value`. `path` is a JSON pointer
(RFC 6901): "" is the whole document, "/steps/0/title" a member; in a key, "~" is written "~0" and "/" is "~1"
(unescape "~1" before "~0"). An array index is a decimal number without leading zeros.

- `{"op": "add", "path": P, "value": V}`: a new value appears at P.
  - P = "": V replaces the whole document (only for a non-object answer, e.g. a top-level array or string; an
    object answer never gets a root `add`, the client's `{}` is its start).
  - P = ".../key" where the parent is an object: set the member `key` to V (replacing any earlier one: with a
    repeated key the last one wins, as in `json.loads`).
  - P = ".../-" where the parent is an array: push V (RFC 6902's "append" index). The element's own path, used by
    later patches, is ".../N" with N its index (the array's length before the push). The producer only ever emits
    "-" for arrays; an applier may also accept a numeric index N <= length and insert there, as RFC 6902 does.
  - V is `{}` or `[]` for a container (its members follow as their own patches); the text received so far for a
    string (often "", more follows through `append`); the final value for a number, true, false or null.
- `{"op": "append", "path": P, "value": S}`: the value at P is a string; concatenate S to its end.
- `{"op": "done", "path": P}`: the value at P is complete: a string has its last character, a container its last
  member. The document does not change. Numbers, true, false and null arrive complete in their `add` and get no
  `done`. The root's `done` (path "") is the last patch of a complete answer.

Notes for an applier:
- Whether "-" means "push" depends on the parent: in an object, "/-" is simply the member named "-".
- Strings are split between patches on code points, never inside a surrogate pair written as two escapes, so each
  `value` is valid text (a lone surrogate escape in the model's JSON stays lone, as `json.loads` keeps it).
- Integers beyond 2**53 lose precision in a JS `number`, exactly as with `JSON.parse` of the same text.
- Patches never share objects with each other or with the producer's state, so a client may keep and mutate them.
- Batching the patches of several chunks (`coalesce`) changes how many patches there are, never the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NotRequired, TypeAlias, TypedDict

from triage._exceptions import StructuredOutputError

__all__ = ["JSONValue", "Patch", "apply_patch", "coalesce", "copy_json", "escape_token", "split_pointer"]

JSONValue: TypeAlias = "dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None"


class Patch(TypedDict):
    op: Literal["add", "append", "done"]
    path: str
    value: NotRequired[JSONValue]


def escape_token(key: str) -> str:
    """One reference token of a JSON pointer (RFC 6901 section 3): "~" first, so "/" -> "~1" is not re-escaped."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def split_pointer(path: str) -> list[str]:
    """The unescaped tokens of a JSON pointer; "" (the whole document) has none."""
    if path == "":
        return []
    if path[0] != "/":
        raise StructuredOutputError(f"invalid JSON pointer {path!r}: must be empty or start with '/'", path=path)
    # RFC 6901 section 4: "~1" before "~0", so "~01" decodes to "~1" and not to "/".
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def copy_json(value: JSONValue) -> JSONValue:
    """A deep copy of a JSON value (dicts and lists only: faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def _index(token: str, size: int, path: str, *, insert: bool) -> int:
    # RFC 6901: decimal, no leading zeros (so "01" and "-1" are not indexes).
    if not token.isascii() or not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise StructuredOutputError(f"{path}: {token!r} is not an array index", path=path)
    index = int(token)
    if index > size or (index == size and not insert):
        raise StructuredOutputError(f"{path}: index {index} is out of range (length {size})", path=path)
    return index


def _apply_at(node: JSONValue, tokens: list[str], depth: int, patch: Patch) -> JSONValue:
    """`node` with the patch applied below it; containers on the way are copied, the rest is shared."""
    path = patch["path"]
    token = tokens[depth]
    last = depth == len(tokens) - 1
    if isinstance(node, dict):
        if last and patch["op"] == "add":
            copied = dict(node)
            copied[token] = copy_json(patch.get("value"))
            return copied
        if token not in node:
            raise StructuredOutputError(f"{path}: no member {token!r}", path=path)
        child = node[token]
        copied = dict(node)
        copied[token] = _apply_leaf(child, patch) if last else _apply_at(child, tokens, depth + 1, patch)
        return copied
    if isinstance(node, list):
        if last and patch["op"] == "add":
            copied_list = list(node)
            index = len(node) if token == "-" else _index(token, len(node), path, insert=True)
            copied_list.insert(index, copy_json(patch.get("value")))
            return copied_list
        index = _index(token, len(node), path, insert=False)
        copied_list = list(node)
        child = node[index]
        copied_list[index] = _apply_leaf(child, patch) if last else _apply_at(child, tokens, depth + 1, patch)
        return copied_list
    raise StructuredOutputError(f"{path}: cannot descend into a {type(node).__name__}", path=path)


def _apply_leaf(target: JSONValue, patch: Patch) -> JSONValue:
    """The op applied to the value that `path` names (an existing one: `add` is handled by the parent)."""
    if patch["op"] == "done":
        return target
    if patch["op"] == "append":
        value = patch.get("value")
        if not isinstance(target, str) or not isinstance(value, str):
            raise StructuredOutputError(f"{patch['path']}: append needs a string target and value", path=patch["path"])
        return target + value
    raise StructuredOutputError(f"unknown patch op {patch['op']!r}", path=patch["path"])


def apply_patch(doc: JSONValue, patch: Patch) -> JSONValue:
    """The document after one patch; `doc` itself is not modified (containers on the path are copied, the rest is
    shared, as an immutable UI state update would do). Raises StructuredOutputError for a patch that does not fit."""
    tokens = split_pointer(patch["path"])
    if not tokens:
        if patch["op"] == "add":
            return copy_json(patch.get("value"))
        return _apply_leaf(doc, patch)
    return _apply_at(doc, tokens, 0, patch)


def _extends(prev: Patch, patch: Patch) -> bool:
    """Whether `patch` (an append) continues the string that `prev` added or appended to."""
    if not isinstance(prev.get("value"), str):
        return False
    path, prev_path = patch["path"], prev["path"]
    if prev_path == path:
        return prev["op"] in ("add", "append")
    if prev["op"] != "add" or not prev_path.endswith("/-"):
        return False
    # An add at "A/-" names the new element by the append index; its real path is "A/N".
    head, _, token = path.rpartition("/")
    return head == prev_path[:-2] and token.isdigit()


def coalesce(patches: Iterable[Patch]) -> list[Patch]:
    """Merge runs of patches that grow the same string: consecutive `append`s to one path become one, and an `add`
    of a string followed by `append`s to it becomes one `add` of the joined text. Use it to batch the patches of
    several chunks into one event; `IncrementalJSONParser.feed` already returns each chunk's patches coalesced.

    Meant for sequences in the parser's order: an `append` that directly follows the `add` at "A/-" of a string and
    names "A/N" is to that new element (the parser's open string is always the newest element), so the two merge.
    The input patches are not modified."""
    out: list[Patch] = []
    texts: list[list[str] | None] = []  # pieces joined once at the end: no quadratic concatenation
    for patch in patches:
        value = patch.get("value")
        if patch["op"] == "append" and out and isinstance(value, str) and _extends(out[-1], patch):
            pieces = texts[-1]
            assert pieces is not None
            pieces.append(value)
            continue
        out.append(patch)
        texts.append([value] if isinstance(value, str) and patch["op"] in ("add", "append") else None)
    result: list[Patch] = []
    for patch, pieces in zip(out, texts, strict=True):
        if pieces is not None and len(pieces) > 1:
            result.append({"op": patch["op"], "path": patch["path"], "value": "".join(pieces)})
        else:
            result.append(patch)
    return result
