"""The incremental JSON parser, its patches and per-field schema validation (issue 5)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from triage._exceptions import StructuredOutputError, UnprocessableRequest
from triage.stream.structured import IncrementalJSONParser, SchemaValidator
from triage.stream.structured import _parser as _structured
from triage.stream.structured import _patch as _jsonpatch
from triage.stream.structured import _schema as _structured_schema
from triage.stream.structured._patch import JSONValue, Patch, apply_patch, coalesce, escape_token, split_pointer

DOC = {
    "title": 'Tea "at five"',
    "summary": "Brew, wait, pour.\nDone ✓ 😀",
    "steps": [
        {"title": "Boil", "minutes": 5, "optional": False, "temp": -1.5e2},
        {"title": "Steep", "minutes": 3, "optional": True, "notes": None},
    ],
    "tags": [],
    "meta": {},
    "a~b/c": [[1, [2.25, []]], {"x": ""}],
}


def feed_all(text: str, size: int, schema: SchemaValidator | None = None) -> tuple[list[Patch], JSONValue]:
    parser = IncrementalJSONParser(schema)
    patches: list[Patch] = []
    for start in range(0, len(text), size):
        patches += parser.feed(text[start : start + size])
    patches += parser.finish()
    return patches, parser.value


def replay(patches: list[Patch]) -> JSONValue:
    doc: JSONValue = {}
    for patch in patches:
        doc = apply_patch(doc, patch)
    return doc


def chunked(parser: IncrementalJSONParser, *chunks: str) -> list[Patch]:
    patches: list[Patch] = []
    for chunk in chunks:
        patches += parser.feed(chunk)
    return patches


# -- splits ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_every_two_way_split_gives_the_document(indent: int | None, ensure_ascii: bool) -> None:
    text = json.dumps(DOC, indent=indent, ensure_ascii=ensure_ascii)
    expected = json.loads(text)
    whole = coalesce(feed_all(text, len(text))[0])
    for cut in range(len(text) + 1):
        parser = IncrementalJSONParser()
        patches = parser.feed(text[:cut]) + parser.feed(text[cut:]) + parser.finish()
        assert replay(patches) == expected == parser.value
        assert coalesce(patches) == whole  # the patch stream does not depend on where the text was cut


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 16])
def test_fixed_size_chunks_replay_to_json_loads(size: int) -> None:
    text = json.dumps(DOC)
    patches, value = feed_all(text, size)
    assert replay(patches) == json.loads(text) == value
    assert replay(coalesce(patches)) == json.loads(text)


@pytest.mark.parametrize(
    "literal",
    [
        r'"\u00e9\u4e2d\uD83D\uDE00 \ud83d\ude00x"',  # BMP escapes and a surrogate pair, both cases
        r'"a\"b\\c\/d\be\ff\ng\rh\ti"',
        r'"\ud800"',  # lone high surrogate at the end: kept, as json.loads does
        r'"\ud800x"',  # high surrogate followed by text
        r'"\ud800\n"',  # ... by another escape
        r'"\ud800\u0041"',  # ... by a \u escape that is no low half
        r'"\ud800\ud800\udc00"',  # a lone high, then a pair
        r'"\udc00"',  # lone low surrogate
        '"😀 raw astral and é"',
    ],
)
def test_strings_split_anywhere_including_escapes_and_surrogates(literal: str) -> None:
    text = '{"s": ' + literal + ', "k' + literal[1:] + ": [" + literal + "]}"
    expected = json.loads(text)
    for cut in range(len(text) + 1):
        for cut2 in range(cut, len(text) + 1, 3):
            parser = IncrementalJSONParser()
            patches = chunked(parser, text[:cut], text[cut:cut2], text[cut2:]) + parser.finish()
            assert replay(patches) == expected == parser.value


def test_a_surrogate_pair_never_splits_across_patches() -> None:
    text = r'{"s": "a\ud83d\ude00b"}'
    for cut in range(len(text) + 1):
        parser = IncrementalJSONParser()
        patches = chunked(parser, text[:cut], text[cut:])
        for patch in patches:
            value = patch.get("value")
            if isinstance(value, str):
                value.encode("utf-8")  # raises on a lone surrogate
        assert replay(patches) == {"s": "a😀b"}


@pytest.mark.parametrize(
    "chunks, expected",
    [
        (["[1.", "5]"], [1.5]),
        (["[1", ".", "5", "e", "+", "3]"], [1500.0]),
        (["[-", "0]"], [0]),
        (["[-0.", "0]"], [-0.0]),
        (["[1e", "-2, 2E", "2]"], [0.01, 200.0]),
        (["[12", "34,", " 5", "6 ]"], [1234, 56]),
        (['{"n": 0', "}"], {"n": 0}),
        (["[1", "]"], [1]),
        (["[tr", "ue, fa", "l", "se, n", "ull]"], [True, False, None]),
    ],
)
def test_numbers_and_literals_split_anywhere(chunks: list[str], expected: JSONValue) -> None:
    parser = IncrementalJSONParser()
    patches = chunked(parser, *chunks) + parser.finish()
    assert parser.value == expected == replay(patches)
    assert type(parser.value) is type(expected)


def test_a_number_is_added_once_complete() -> None:
    parser = IncrementalJSONParser()
    assert chunked(parser, '{"n": 1.') == []
    assert parser.value == {}  # partial-json-parser would say {"n": 1}
    assert parser.feed("5") == []
    assert parser.feed(",") == [{"op": "add", "path": "/n", "value": 1.5}]


@pytest.mark.parametrize(
    "text, expected",
    [("12", 12), ("-3.5e1", -35.0), (" 7 ", 7), ("true", True), ("null", None), ('"hi"', "hi"), ("[]", []), ("{}", {})],
)
def test_non_object_roots(text: str, expected: JSONValue) -> None:
    for cut in range(len(text) + 1):
        parser = IncrementalJSONParser()
        patches = chunked(parser, text[:cut], text[cut:]) + parser.finish()
        assert parser.value == expected == replay(patches)
        assert parser.done


def test_root_patches() -> None:
    parser = IncrementalJSONParser()
    assert parser.feed("[") == [{"op": "add", "path": "", "value": []}]
    assert parser.feed('"a') == [{"op": "add", "path": "/-", "value": "a"}]
    assert parser.feed('b"]') == [
        {"op": "append", "path": "/0", "value": "b"},
        {"op": "done", "path": "/0"},
        {"op": "done", "path": ""},
    ]
    obj = IncrementalJSONParser()
    assert obj.feed("{") == []  # the client's document already is {}
    assert obj.feed("}") == [{"op": "done", "path": ""}]
    text = IncrementalJSONParser()
    assert text.feed('"ab') == [{"op": "add", "path": "", "value": "ab"}]
    assert text.feed('c"') == [{"op": "append", "path": "", "value": "c"}, {"op": "done", "path": ""}]


def test_patch_stream_for_a_small_answer() -> None:
    parser = IncrementalJSONParser()
    patches = chunked(parser, '{"title": "He', 'llo", "steps": ["a', 'b", ', '{"n": 2}], "ok": tr', "ue}")
    assert patches == [
        {"op": "add", "path": "/title", "value": "He"},
        {"op": "append", "path": "/title", "value": "llo"},
        {"op": "done", "path": "/title"},
        {"op": "add", "path": "/steps", "value": []},
        {"op": "add", "path": "/steps/-", "value": "a"},
        {"op": "append", "path": "/steps/0", "value": "b"},
        {"op": "done", "path": "/steps/0"},
        {"op": "add", "path": "/steps/-", "value": {}},
        {"op": "add", "path": "/steps/1/n", "value": 2},
        {"op": "done", "path": "/steps/1"},
        {"op": "done", "path": "/steps"},
        {"op": "add", "path": "/ok", "value": True},
        {"op": "done", "path": ""},
    ]


def test_keys_are_escaped_in_paths() -> None:
    parser = IncrementalJSONParser()
    patches = chunked(parser, '{"a/b": {"~1": "x", "\\u007e0": 1, "": 2}}')
    paths = [p["path"] for p in patches]
    assert paths == ["/a~1b", "/a~1b/~01", "/a~1b/~01", "/a~1b/~00", "/a~1b/", "/a~1b", ""]
    assert replay(patches) == {"a/b": {"~1": "x", "~0": 1, "": 2}}


def test_repeated_keys_keep_the_last_value_like_json_loads() -> None:
    text = '{"a": "x", "b": 1, "a": [2]}'
    patches, value = feed_all(text, 3)
    assert value == replay(patches) == json.loads(text)


def test_whitespace_everywhere() -> None:
    text = ' \n\t{ "a" :\r\n [ 1 , { } , [ ] , "x" ] , "b" : null } \n '
    for size in (1, 2, 5):
        patches, value = feed_all(text, size)
        assert value == replay(patches) == json.loads(text)


def test_feed_coalesces_within_a_chunk() -> None:
    text = '{"s": "' + "ab\\n" * 20 + '", "t": ["' + "x" * 40 + '"]}'
    parser = IncrementalJSONParser()
    patches = parser.feed(text[:60]) + parser.feed(text[60:130])
    assert [p["op"] for p in patches] == ["add", "append", "done", "add", "add"]
    assert replay(patches + parser.feed(text[130:])) == json.loads(text)


def test_long_strings_cost_their_own_length_on_the_wire() -> None:
    body = "word " * 2000
    text = json.dumps({"summary": body})
    patches, _ = feed_all(text, 4)
    whole = coalesce(patches)
    assert whole == [
        {"op": "add", "path": "/summary", "value": body},
        {"op": "done", "path": "/summary"},
        {"op": "done", "path": ""},
    ]
    assert sum(len(json.dumps(p)) for p in whole) < 1.02 * len(text)
    # Text is never resent: the values of all appends add up to the string itself.
    assert "".join(str(p.get("value", "")) for p in patches) == body


def test_patches_do_not_alias_the_parser_state() -> None:
    parser = IncrementalJSONParser()
    patches = parser.feed('{"a": {"b": [')
    for patch in patches:
        value = patch.get("value")
        if isinstance(value, dict):
            value["junk"] = 1
        elif isinstance(value, list):
            value.append("junk")
    assert parser.value == {"a": {"b": []}}
    snapshot = parser.value
    assert isinstance(snapshot, dict)
    snapshot["c"] = 1
    assert parser.value == {"a": {"b": []}}


@pytest.mark.parametrize(
    "prefix, expected",
    [
        ("", None),
        ("{", {}),
        ('{"ti', {}),
        ('{"title"', {}),
        ('{"title": ', {}),
        ('{"title": "', {"title": ""}),
        ('{"title": "Hel', {"title": "Hel"}),
        ('{"title": "Hel\\', {"title": "Hel"}),  # a cut escape is not shown yet
        ('{"title": "Hel\\u00', {"title": "Hel"}),
        ('{"title": "Hel\\ud83d', {"title": "Hel"}),  # nor a high surrogate before its low half
        ('{"title": "Hello", "n": 1', {"title": "Hello"}),  # a number shows once it is complete
        ('{"title": "Hello", "n": 12 ', {"title": "Hello", "n": 12}),
        ('{"a": [1, tr', {"a": [1]}),
        ('{"a": [1, true', {"a": [1, True]}),
        ('{"a": [[{"b": "c', {"a": [[{"b": "c"}]]}),
        ("[", []),
        ("12", None),  # an unfinished root number
    ],
)
def test_value_of_a_prefix(prefix: str, expected: JSONValue) -> None:
    parser = IncrementalJSONParser()
    parser.feed(prefix)
    assert parser.value == expected


# -- malformed input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, offset, path, fragment",
    [
        ('{"a" 1}', 5, "", "expected ':'"),
        ('{"a": 1,}', 8, "", "expected a key"),
        ("[1,]", 3, "", "expected a value"),
        ("[1 2]", 3, "", "expected ',' or ']'"),
        ("[1}", 2, "", "expected ',' or ']'"),
        ('{"a": 1]', 7, "", "expected ',' or '}'"),
        ('{"a": 01}', 7, "/a", "invalid number '01'"),
        ('{"a": 1.}', 8, "/a", "invalid number '1.'"),
        ('{"a": 1.e5}', 8, "/a", "invalid number"),
        ('{"a": -}', 7, "/a", "invalid number '-'"),
        ('{"a": 1e+}', 9, "/a", "invalid number"),
        ('{"a": 1-2}', 7, "/a", "invalid number"),
        ('{"a": tru}', 9, "/a", "expected 'true'"),
        ('{"a": nul1}', 9, "/a", "expected 'null'"),
        ('{"a": NaN}', 6, "", "expected a value"),
        ("[Infinity]", 1, "", "expected a value"),
        ("[-Infinity]", 2, "/0", "invalid number"),
        ('{"a": "x\\qy"}', 9, "/a", "invalid escape"),
        ('{"a": "\\u12G4"}', 11, "/a", "not a hex digit"),
        ('{"a": "line\nbreak"}', 11, "/a", "control character"),
        ('{"a\tb": 1}', 3, "", "control character"),
        ('{"k\\x": 1}', 4, "", "invalid escape"),
        ('{"a": 1}x', 8, "", "extra data"),
        ('{"a": 1}}', 8, "", "extra data"),
        ("{a: 1}", 1, "", "expected a key or '}'"),
        ("]", 0, "", "expected a value"),
        ('{"s": [{"t": "x"} {"t": "y"}]}', 18, "/s", "expected ',' or ']'"),
        ('{"s": [{"t": "x", "u": [1, 2,, 3]}]}', 29, "/s/0/u", "expected a value"),
    ],
)
def test_malformed_input_is_rejected_at_its_offset(text: str, offset: int, path: str, fragment: str) -> None:
    if "NaN" not in text and "Infinity" not in text:  # json.loads takes these; RFC 8259 does not
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    for size in (1, 3, len(text)):
        parser = IncrementalJSONParser()
        with pytest.raises(StructuredOutputError) as info:
            for start in range(0, len(text), size):
                parser.feed(text[start : start + size])
            parser.finish()
        assert info.value.offset == offset, info.value.message
        assert info.value.path == path
        assert fragment in info.value.message
        assert f"offset {offset}" in info.value.message


@pytest.mark.parametrize(
    "text, path, fragment",
    [
        ("", "", "empty document"),
        (" \n ", "", "empty document"),
        ('{"a": "x', "/a", "incomplete"),
        ('{"a": [1', "/a/0", "incomplete"),
        ('{"a": [1,', "/a", "expected a value"),
        ('{"a"', "", "expected ':'"),
        ('"abc', "", "incomplete"),
        ("tru", "", "incomplete"),
        ("1.", "", "invalid number"),
        ("-", "", "invalid number"),
    ],
)
def test_finish_rejects_an_incomplete_document(text: str, path: str, fragment: str) -> None:
    parser = IncrementalJSONParser()
    parser.feed(text)
    with pytest.raises(StructuredOutputError) as info:
        parser.finish()
    assert info.value.path == path
    assert fragment in info.value.message
    assert info.value.offset is not None and info.value.offset <= len(text)


def test_an_error_is_sticky() -> None:
    parser = IncrementalJSONParser()
    with pytest.raises(StructuredOutputError) as first:
        parser.feed("[1,,")
    with pytest.raises(StructuredOutputError) as again:
        parser.feed("2]")
    assert again.value is first.value
    with pytest.raises(StructuredOutputError):
        parser.finish()


def test_offsets_count_characters_across_chunks() -> None:
    parser = IncrementalJSONParser()
    parser.feed('{"é😀": ')
    parser.feed("[1,")
    with pytest.raises(StructuredOutputError) as info:
        parser.feed(" ]")
    assert info.value.offset == 11  # characters, not bytes
    assert info.value.path == "/é😀"


def test_nesting_is_bounded() -> None:
    parser = IncrementalJSONParser(max_depth=3)
    parser.feed('{"a": [[')
    with pytest.raises(StructuredOutputError) as info:
        parser.feed("[1]]]}")
    assert info.value.offset == 8 and info.value.path == "/a/0"
    deep = "[" * 512 + "]" * 512
    assert IncrementalJSONParser().feed(deep)[-1] == {"op": "done", "path": ""}
    with pytest.raises(StructuredOutputError, match="nesting deeper than 512"):
        IncrementalJSONParser().feed("[" + deep + "]")


def test_value_after_an_error_shows_what_was_parsed() -> None:
    parser = IncrementalJSONParser()
    parser.feed('{"a": "xy')
    with pytest.raises(StructuredOutputError):
        parser.feed('z", "b": [1, }')
    assert parser.value == {"a": "xyz", "b": [1]}


def test_error_maps_to_openai_shape() -> None:
    parser = IncrementalJSONParser()
    with pytest.raises(StructuredOutputError) as info:
        parser.feed('{"a": x')
    body = info.value.to_dict()["error"]
    assert isinstance(body, dict)
    assert body["type"] == "structured_output_error"
    assert body["code"] == "structured_output_invalid"


# -- schema ----------------------------------------------------------------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 10},
        "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}, "maxItems": 3},
        "best": {"anyOf": [{"$ref": "#/$defs/Step"}, {"type": "null"}]},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
        "labels": {"type": "object", "patternProperties": {"^x-": {"type": "boolean"}}},
        "either": {"anyOf": [{"type": "object", "required": ["a"]}, {"type": "object", "required": ["b"]}]},
    },
    "required": ["title"],
    "additionalProperties": False,
    "$defs": {
        "Step": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "minutes": {"type": "integer", "minimum": 0}},
            "required": ["name"],
        }
    },
}


def fail_at(schema: dict[str, Any], *chunks: str) -> tuple[StructuredOutputError, int]:
    """The error and the index of the chunk that raised it."""
    parser = IncrementalJSONParser(SchemaValidator(schema))
    for index, chunk in enumerate(chunks):
        try:
            parser.feed(chunk)
        except StructuredOutputError as exc:
            return exc, index
    try:
        parser.finish()
    except StructuredOutputError as exc:
        return exc, len(chunks)
    raise AssertionError("no error")


@pytest.mark.parametrize(
    "chunks, path, fragment, at",
    [
        (['{"title": 5', ", ", '"steps": []}'], "/title", "is not of type 'string'", 1),
        (['{"title": "far too long', ' a title"', "}"], "/title", "is too long", 1),
        (['{"title": "t", "steps": [{"name": "a", "minutes": -1', "}, ", "]}"], "/steps/0/minutes", "minimum", 1),
        (['{"title": "t", "steps": [{"name": "a"}, {"minutes": 1}', ", ", "]}"], "/steps/1", "'name' is a required", 0),
        (['{"title": "t", "steps": [{"name": 1}', "]}"], "/steps/0/name", "is not of type 'string'", 0),
        (['{"title": "t", "steps": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]', "}"], "/steps",
         "is too long", 0),
        (['{"title": "t", "best": {"name": "a", "minutes": "5"', "}}"], "/best/minutes", "is not of type", 0),
        (['{"title": "t", "best": {"minutes": 5}', "}"], "/best", "'name' is a required", 0),
        (['{"title": "t", "pair": [1, 2', "]}"], "/pair/1", "is not of type 'string'", 1),
        (['{"title": "t", "pair": [1, "a", 3', "]}"], "/pair/2", "not allowed by the schema", 1),
        (['{"title": "t", "labels": {"x-y": 1', "}}"], "/labels/x-y", "is not of type 'boolean'", 1),
        (['{"title": "t", "extra": 1', "}"], "/extra", "not allowed by the schema", 1),
        (['{"title": "t", "either": {"c": 1}', "}"], "/either", "is not valid under any", 0),
        (['{"steps": []', "}"], "/", "'title' is a required property", 1),
    ],
)  # fmt: skip
def test_each_field_is_checked_when_it_completes(chunks: list[str], path: str, fragment: str, at: int) -> None:
    error, index = fail_at(SCHEMA, *chunks)
    assert (error.path or "/") == path, error.message
    assert fragment in error.message
    assert error.message.startswith(path + ":")
    assert index == at  # raised by the chunk that completed the field, not at the end


def test_a_valid_answer_passes_with_the_same_patches() -> None:
    text = json.dumps(
        {
            "title": "Tea",
            "steps": [{"name": "boil", "minutes": 5}],
            "best": None,
            "pair": [1, "x"],
            "labels": {"x-a": True, "other": 3},
            "either": {"b": 1},
        }
    )
    for size in (1, 4, len(text)):
        checked, value = feed_all(text, size, SchemaValidator(SCHEMA))
        assert value == json.loads(text)
        assert checked == feed_all(text, size)[0]


def test_the_whole_document_is_checked_where_fields_cannot_be() -> None:
    schema = {"allOf": [{"type": "object"}, {"properties": {"n": {"type": "integer"}}}]}
    error, index = fail_at(schema, '{"n": "x"', "}")
    assert index == 1 and error.path == "/n"


def test_non_object_root_with_a_schema() -> None:
    error, _ = fail_at({"type": "array", "items": {"type": "string"}}, '["a", 1', "]")
    assert error.path == "/1"
    error, _ = fail_at({"type": "string", "maxLength": 2}, '"abc"')
    assert error.path == "" and error.message.startswith("/:")


def test_schema_from_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    validator = SchemaValidator.from_response_format(
        {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    )
    assert validator is not None and validator.schema == schema
    legacy = SchemaValidator.from_response_format({"type": "json_object", "schema": schema})
    assert legacy is not None
    assert SchemaValidator.from_response_format({"type": "json_object"}) is None
    assert SchemaValidator.from_response_format({"type": "text"}) is None
    assert SchemaValidator.from_response_format(None) is None


def test_an_invalid_schema_is_unprocessable() -> None:
    with pytest.raises(UnprocessableRequest) as info:
        SchemaValidator({"type": "object", "properties": {"a": {"type": "nonsense"}}})
    assert info.value.status_code == 422


def test_shallow_schema_keeps_container_keywords() -> None:
    validator = SchemaValidator(SCHEMA)
    step = SCHEMA["$defs"]["Step"]
    shallow = validator.shallow(step)
    assert shallow is not None
    assert shallow["required"] == ["name"] and shallow["properties"] == {"name": True, "minutes": True}
    assert validator.shallow({"anyOf": [{"type": "object"}]}) is None


# -- patches ---------------------------------------------------------------------------------------------------------


def test_apply_patch_semantics() -> None:
    doc: JSONValue = {"a": [1], "s": "x"}
    assert apply_patch(doc, {"op": "add", "path": "/b", "value": {}}) == {"a": [1], "s": "x", "b": {}}
    assert apply_patch(doc, {"op": "add", "path": "/a", "value": 2}) == {"a": 2, "s": "x"}
    assert apply_patch(doc, {"op": "add", "path": "/a/-", "value": 2}) == {"a": [1, 2], "s": "x"}
    assert apply_patch(doc, {"op": "add", "path": "/a/0", "value": 0}) == {"a": [0, 1], "s": "x"}
    assert apply_patch(doc, {"op": "append", "path": "/s", "value": "yz"}) == {"a": [1], "s": "xyz"}
    assert apply_patch(doc, {"op": "done", "path": "/s"}) == doc
    assert apply_patch(doc, {"op": "add", "path": "", "value": [1]}) == [1]
    assert apply_patch("ab", {"op": "append", "path": "", "value": "c"}) == "abc"
    assert doc == {"a": [1], "s": "x"}  # pure: the input is untouched


@pytest.mark.parametrize(
    "patch",
    [
        {"op": "append", "path": "/a", "value": "x"},  # not a string
        {"op": "append", "path": "/missing", "value": "x"},
        {"op": "add", "path": "/a/2", "value": 1},  # index past the end
        {"op": "add", "path": "/a/01", "value": 1},
        {"op": "done", "path": "/a/1"},
        {"op": "add", "path": "/s/x", "value": 1},  # into a string
        {"op": "add", "path": "a", "value": 1},  # not a pointer
        {"op": "remove", "path": "/a"},
    ],
)
def test_apply_patch_rejects_patches_that_do_not_fit(patch: Any) -> None:
    with pytest.raises(StructuredOutputError):
        apply_patch({"a": [1], "s": "x"}, patch)


def test_pointer_escaping_round_trips() -> None:
    for key in ["plain", "a/b", "~", "~1", "~01", "/~/", ""]:
        assert split_pointer("/" + escape_token(key)) == [key]
    assert split_pointer("") == []
    assert split_pointer("/a~01/b~10") == ["a~1", "b/0"]


def test_coalesce_merges_runs_on_one_string() -> None:
    patches: list[Patch] = [
        {"op": "add", "path": "/t", "value": "a"},
        {"op": "append", "path": "/t", "value": "b"},
        {"op": "append", "path": "/t", "value": "c"},
        {"op": "done", "path": "/t"},
        {"op": "add", "path": "/l", "value": []},
        {"op": "add", "path": "/l/-", "value": ""},
        {"op": "append", "path": "/l/0", "value": "x"},
        {"op": "done", "path": "/l/0"},
        {"op": "add", "path": "/l/-", "value": 5},
        {"op": "append", "path": "/u", "value": "p"},
        {"op": "append", "path": "/u", "value": "q"},
        {"op": "append", "path": "/v", "value": "r"},
    ]
    original = [dict(p) for p in patches]
    assert coalesce(patches) == [
        {"op": "add", "path": "/t", "value": "abc"},
        {"op": "done", "path": "/t"},
        {"op": "add", "path": "/l", "value": []},
        {"op": "add", "path": "/l/-", "value": "x"},
        {"op": "done", "path": "/l/0"},
        {"op": "add", "path": "/l/-", "value": 5},
        {"op": "append", "path": "/u", "value": "pq"},
        {"op": "append", "path": "/v", "value": "r"},
    ]
    assert patches == original


def test_modules_export_what_they_define() -> None:
    for module in (_jsonpatch, _structured, _structured_schema):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
