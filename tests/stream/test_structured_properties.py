"""Property tests of the incremental JSON parser against partial-json-parser (the reference) and json.loads."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import partial_json_parser  # type: ignore[import-untyped]  # ships no py.typed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from partial_json_parser import Allow

from triage._exceptions import StructuredOutputError
from triage.stream.structured import IncrementalJSONParser, JSONValue, Patch, apply_patch, coalesce

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Strings exercise escapes, astral characters (surrogate pairs under ensure_ascii) and control characters.
_text = st.text(alphabet=st.sampled_from(list('ab ~/"\\\n\t\x01é中😀\U0001f600') + ["\u2028"]), max_size=8)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=16,
)
containers = st.one_of(st.lists(json_values, max_size=4), st.dictionaries(_text, json_values, max_size=5))


@st.composite
def rendered(draw: st.DrawFn, values: st.SearchStrategy[Any] = json_values) -> tuple[str, list[int]]:
    """A JSON text in one of json.dumps's styles, and sorted cut points that split it into chunks."""
    value = draw(values)
    text = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2, "\t"])),
        separators=draw(st.sampled_from([None, (",", ":"), (" ,", " : ")])),
    )
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=12))))
    return text, cuts


def pieces(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def replay(patches: list[Patch]) -> JSONValue:
    doc: JSONValue = {}
    for patch in patches:
        doc = apply_patch(doc, patch)
    return doc


# A prefix that ends inside an escape ("\", "\u00") or right after a high surrogate escape whose low half may
# follow: the parser holds those characters back, partial-json-parser shows a lone surrogate (documented).
_CUT_ESCAPE = re.compile(r'(?<!\\)(?:\\\\)*\\(?:u[0-9a-fA-F]{0,3})?$|(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}'
                         r'(?:\\(?:u[0-9a-fA-F]{0,4})?)?$')  # fmt: skip
_AFTER_NUMBER = re.compile(r"[0-9][ \t\n\r]+$")
_ESCAPE = re.compile(r"\\.", re.DOTALL)
# partial-json-parser strips the whole prefix, so an open string loses its trailing whitespace ('["a ' -> ["a"]);
# the parser keeps it. A marker after such a prefix keeps the whitespace inside; it is removed from the answer.
_MARK = "\uffff"


def _unmark(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(_MARK, "")
    if isinstance(value, list):
        return [_unmark(v) for v in value]
    if isinstance(value, dict):
        return {_unmark(k): _unmark(v) for k, v in value.items()}
    return value


def reference(prefix: str) -> tuple[bool, Any]:
    """partial-json-parser's completion of `prefix` as the parser defines `value`: (defined?, value)."""
    if not prefix.strip() or _CUT_ESCAPE.search(prefix):
        return False, None
    # Numbers and literals only once complete; a number followed by whitespace is complete to this parser, which
    # partial-json-parser without Allow.NUM would still drop, so that case asks it with everything allowed.
    allow = Allow.ALL if _AFTER_NUMBER.search(prefix) else Allow.STR | Allow.ARR | Allow.OBJ
    in_string = _ESCAPE.sub("", prefix).count('"') % 2 == 1
    marked = in_string and prefix[-1].isspace()
    try:
        completed = partial_json_parser.loads(prefix + _MARK if marked else prefix, allow)
    except ValueError:  # the reference has no completion for this prefix (MalformedJSON, PartialJSON)
        return False, None
    return True, _unmark(completed) if marked else completed


@SETTINGS
@given(rendered(containers))
def test_value_after_every_chunk_agrees_with_partial_json_parser(case: tuple[str, list[int]]) -> None:
    text, cuts = case
    parser = IncrementalJSONParser()
    consumed = ""
    for piece in pieces(text, cuts):
        parser.feed(piece)
        consumed += piece
        defined, expected = reference(consumed)
        if defined:
            assert parser.value == expected, consumed
    parser.finish()
    assert parser.value == json.loads(text)


@SETTINGS
@given(rendered())
def test_patches_replay_to_json_loads_for_any_split(case: tuple[str, list[int]]) -> None:
    text, cuts = case
    parser = IncrementalJSONParser()
    patches: list[Patch] = []
    for piece in pieces(text, cuts):
        patches += parser.feed(piece)
        assert replay(patches) == parser.value or not isinstance(parser.value, (dict, list, str))
    patches += parser.finish()
    expected = json.loads(text)
    assert parser.value == expected
    assert replay(patches) == expected
    assert replay(coalesce(patches)) == expected
    # Coalesced over the whole stream, the patches do not depend on where the text was cut.
    whole = IncrementalJSONParser()
    assert coalesce(patches) == coalesce(whole.feed(text) + whole.finish())


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A JSON text with one character inserted, deleted or replaced: valid or not, json.loads decides."""
    text, _ = draw(rendered())
    at = draw(st.integers(0, len(text)))
    ch = draw(st.sampled_from(list('{}[]:,"\\ -.0159eEtfnul') + ["\x00", "\n"]))
    how = draw(st.sampled_from(["insert", "delete", "replace"]))
    if how == "insert":
        return text[:at] + ch + text[at:]
    if how == "delete":
        return text[:at] + text[at + 1 :]
    return text[:at] + ch + text[at + 1 :]


@SETTINGS
@given(mutated(), st.integers(1, 7))
def test_accepts_exactly_what_json_loads_accepts(text: str, size: int) -> None:
    try:
        expected = json.loads(text)
        valid = True
    except json.JSONDecodeError:
        valid = False
    parser = IncrementalJSONParser()
    try:
        for start in range(0, len(text), size):
            parser.feed(text[start : start + size])
        parser.finish()
    except StructuredOutputError as exc:
        assert not valid, exc.message
        assert exc.offset is not None and 0 <= exc.offset <= len(text)
        return
    assert valid
    assert parser.value == expected
