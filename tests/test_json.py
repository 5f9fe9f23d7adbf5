"""The request path's JSON codec (triage._json): json's meaning, faster."""

from __future__ import annotations

import json

from triage._json import dumps, loads


def test_a_lone_surrogate_is_written_as_an_escape() -> None:
    """Regression (issue 18): json.loads keeps a lone surrogate escape ("\\ud800"); writing it back raised
    UnicodeEncodeError (orjson refuses it, and UTF-8 cannot carry it), which cut a stream mid-answer."""
    value = json.loads('{"text": "a\\ud800b", "n": 100000000000000000000}')
    data = dumps(value)
    assert data.isascii() and json.loads(data) == value and loads(data) == value


def test_compact_utf8_otherwise() -> None:
    assert dumps({"a": "é", "b": [1, 2.5, None]}) == '{"a":"é","b":[1,2.5,null]}'.encode()
