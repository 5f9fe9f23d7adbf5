"""The structured stream's wire encoding (issue 18): parser -> encoder -> bytes -> JSON -> reference decoder gives
the parser's patches back (coalesced per event), and the whole document, for every split of the model's text."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from triage._exceptions import StructuredOutputError
from triage.stream.structured import (
    IncrementalJSONParser,
    JSONValue,
    Patch,
    WireDecoder,
    WireEncoder,
    apply_patch,
    coalesce,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Strings with escapes, astral characters (surrogate pairs under ensure_ascii), control characters, the pointer's
# own specials ("~", "/"), JS's line separators and a lone surrogate; numbers of every shape, including beyond 64 bits.
_text = st.text(alphabet=st.sampled_from(list('ab01 ~/"\\\n\t\x01é中😀\U0001f600-\u2028\ud800')), max_size=10)
_numbers = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, -0.0, 1e-7, 123456789.125, 1e300, -2.5e-300])
)
_scalars = st.none() | st.booleans() | _numbers | _text
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A value nested 20-200 containers deep, objects and arrays mixed, some of them empty or with siblings."""
    value: Any = draw(_scalars | st.just({}) | st.just([]))
    for _ in range(draw(st.integers(20, 200))):
        if draw(st.booleans()):
            value = {draw(_text): value, **({"z": []} if draw(st.booleans()) else {})}
        else:
            value = [value] if draw(st.booleans()) else [value, {}]
    return value


@st.composite
def split_text(draw: st.DrawFn, values: st.SearchStrategy[Any] = json_values) -> tuple[str, list[str], list[int]]:
    """A JSON text in one of json.dumps's styles, its chunks (cut anywhere: inside escapes, between the halves of
    a surrogate pair, mid-number, mid-literal), and how many chunks each event (one upstream read) carries."""
    value = draw(values)
    text = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2])),
        separators=draw(st.sampled_from([None, (",", ":"), (" ,", " : ")])),
    )
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=40))))
    bounds = [0, *cuts, len(text)]
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    groups = draw(st.lists(st.integers(1, 5), min_size=len(chunks), max_size=len(chunks)))
    return text, chunks, groups


def stream(chunks: list[str], groups: list[int]) -> tuple[list[bytes], list[list[Patch]]]:
    """Parse the chunks and encode them as a UI stream does: each event carries the patches of `groups[i]` chunks
    (the parser's `finish` goes in an event of its own). Returns each event's data and the parser's patches."""
    parser = IncrementalJSONParser(max_depth=1024)
    encoder = WireEncoder()
    events: list[bytes] = []
    raw: list[list[Patch]] = []
    i = 0
    for size in groups:
        if i >= len(chunks):
            break
        patches = [p for chunk in chunks[i : i + size] for p in parser.feed(chunk)]
        i += size
        data = encoder.encode(patches)
        assert bool(data) == bool(patches)
        if data:
            events.append(data)
            raw.append(patches)
    tail = parser.finish()
    if tail:
        events.append(encoder.encode(tail))
        raw.append(tail)
    return events, raw


def replay(events: list[bytes]) -> JSONValue:
    decoder = WireDecoder()
    doc: JSONValue = {}
    for data in events:
        for patch in decoder.decode(json.loads(data)):
            doc = apply_patch(doc, patch)
    return doc


def check(text: str, chunks: list[str], groups: list[int]) -> None:
    events, raw = stream(chunks, groups)
    decoder = WireDecoder()
    for data, patches in zip(events, raw, strict=True):
        assert decoder.decode(json.loads(data)) == coalesce(patches), data
    assert replay(events) == json.loads(text)


@SETTINGS
@given(split_text())
@example(('{"n": 12.5e3}', ['{"n": 1', "2.", "5e", "3}"], [1, 1, 1, 1]))  # a number split mid-digit
@example(('[-0.0, 1E+2, 10000000000000000000000]', ["[-0", ".0, 1E", "+2, 1000000000", "0000000000000]"], [1] * 4))
@example(('"\\ud83d\\ude00\\ud800x\\u00e9"', ['"\\ud83d', "\\ude", '00\\ud800x\\u00', 'e9"'], [1] * 4))  # pairs, lone
@example(('{"a~b/c": {"": [[], {}, ""]}}', ['{"a~b/c": {"": [[', "], {}", ', ""]}}'], [1, 1, 1]))  # keys, empties
@example(("1e400", ["1e4", "00"], [1, 1]))  # infinite to json.loads: sent as 1e999
def test_any_document_split_anywhere_decodes_to_itself(case: tuple[str, list[str], list[int]]) -> None:
    check(*case)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(split_text(deep()))
def test_deep_nesting_decodes_to_itself(case: tuple[str, list[str], list[int]]) -> None:
    check(*case)


@pytest.mark.parametrize("root", ['"text"', "42", "-1.5", "true", "null", "[]", "{}", '[1, "a", [{}]]', "[[[[]]]]"])
def test_roots_that_are_not_objects(root: str) -> None:
    for cut in range(len(root) + 1):
        check(root, [root[:cut], root[cut:]], [1, 1])


def test_the_readme_example() -> None:
    """The example of the module docstring and the README, byte for byte."""
    chunks = ['{"title": "Te', 'a", "steps": ["Boil", "Steep"], "n": 2}']
    events, _ = stream(chunks, [1, 1])
    assert events == [b'[["title","Te"]]', b'["a",1,["steps",[]],["Boil"],1,["Steep"],2,["n",2],1]']
    events, _ = stream(['{"title": "Te', "a", '", "steps": ["Boil", "Steep"], "n": 2}'], [1, 1, 1])
    assert events == [b'[["title","Te"]]', b'"a"', b'[1,["steps",[]],["Boil"],1,["Steep"],2,["n",2],1]']
    decoded = WireDecoder().decode(json.loads(b'[["title","Tea"],1,["steps",[]],["Boil"],1]'))
    assert decoded == [
        {"op": "add", "path": "/title", "value": "Tea"},
        {"op": "done", "path": "/title"},
        {"op": "add", "path": "/steps", "value": []},
        {"op": "add", "path": "/steps/-", "value": "Boil"},
        {"op": "done", "path": "/steps/0"},
    ]


def test_a_lone_append_or_done_goes_bare() -> None:
    parser, encoder = IncrementalJSONParser(), WireEncoder()
    assert encoder.encode(parser.feed('{"summary": "')) == b'[["summary",""]]'
    assert encoder.encode(parser.feed("wor")) == b'"wor"'
    assert encoder.encode(parser.feed("ld")) == b'"ld"'
    assert encoder.encode(parser.feed('"')) == b"1"
    assert encoder.encode(parser.feed("}")) == b"1"
    assert encoder.encode(parser.feed(" ")) == b""


def test_wire_bytes_stay_under_the_plain_text_deltas() -> None:
    """Per 4-character chunk, the structured stream never costs more than `{"text": chunk}` deltas of the same JSON
    text would; coalesced over 16 chunks, at most twice the JSON (DESIGN.md, "Wire size")."""
    doc = {
        "title": 'Tea "at five"',
        "summary": "Brew, wait, pour.\nDone ✓ 😀 " * 8,
        "steps": [{"title": f"Step {i}", "minutes": i, "optional": i % 2 == 0, "refs": ["https://e.org/1"]}
                  for i in range(20)],
        "tags": ["a", "b"],
    }
    text = json.dumps(doc, ensure_ascii=False)
    chunks = [text[i : i + 4] for i in range(0, len(text), 4)]
    per_chunk, _ = stream(chunks, [1] * len(chunks))
    deltas = sum(len(json.dumps({"text": c}, ensure_ascii=False, separators=(",", ":")).encode()) for c in chunks)
    assert sum(map(len, per_chunk)) <= deltas
    coalesced, _ = stream(chunks, [16] * len(chunks))
    assert sum(map(len, coalesced)) <= 2 * len(text.encode())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('"x"', "no open string"),
        ("2", "2 dones with 1 open"),
        ("0", "0 dones"),
        ("true", "is not an item"),
        ("[[1, 2, 3]]", "is not an item"),
        ('[["k", ""], ["j", 1]]', "needs an open object"),
        ('[[["x"]]]', "a push [value] needs an open array"),
        ('[1, ["k", 1]]', "after the document is complete"),
        ("{}", "is not an item"),
    ],
)
def test_the_decoder_refuses_what_does_not_fit(data: str, message: str) -> None:
    decoder = WireDecoder()
    if data == '[[["x"]]]':
        decoder.decode([["k", {}]])  # an object is open: a push has nowhere to go
    with pytest.raises(StructuredOutputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decoder.decode(json.loads(data))


def test_the_encoder_refuses_patches_away_from_the_open_end() -> None:
    encoder = WireEncoder()
    encoder.encode([{"op": "add", "path": "/a", "value": {}}])
    with pytest.raises(StructuredOutputError, match="not at the open end"):
        encoder.encode([{"op": "add", "path": "/b/c", "value": 1}])
    with pytest.raises(StructuredOutputError, match="not at the open end"):
        WireEncoder().encode([{"op": "append", "path": "/a", "value": "x"}])
