"""JSON on the request path: compact bytes out, bytes in, with the standard library's meaning.

Every streamed chunk is parsed once and written once on the request path: with the standard library that was a
fifth of Triage's CPU per streamed answer (bench/overhead.py profile at 64 concurrent). orjson writes a chunk in a
seventeenth of json.dumps' time; jiter (openai-python's own parser) reads one in a third of json.loads' time, and
unlike orjson keeps integers beyond 64 bits exact. Each falls back to the standard library for what it refuses and
json takes, so the documents accepted and the bytes' meaning are json's.
"""

from __future__ import annotations

import json
from typing import Any

import jiter
import orjson

__all__ = ["dumps", "loads"]


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON."""
    try:
        return orjson.dumps(data)
    except TypeError:  # what json writes and orjson refuses: integers beyond 64 bits, keys that are not strings
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (json.loads keeps one from an escape like "\ud800"): UTF-8 cannot carry it, an ASCII
        # escape can. Before, it raised here, mid-stream.
        return json.dumps(data, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """JSON from bytes, as `json.loads` reads it."""
    try:
        # "all" (jiter's default) caches short string values too (its cache is fixed-size, bounded): chunks repeat
        # their ids, object and model names, so a chunk parses in ~0.7x the time of caching keys only (issue 18).
        return jiter.from_json(data, cache_mode="all")
    except ValueError:  # json takes lone surrogate escapes and deeper nesting; else it raises its own error
        return json.loads(data)
