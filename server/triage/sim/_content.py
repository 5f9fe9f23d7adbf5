"""What the simulated provider answers: deterministic text, JSON instances of a schema, tool calls. Pure functions
of the request (no I/O, no clock), so two identical requests get byte-identical content."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "VOCABULARY",
    "Answer",
    "BadRequest",
    "generate_text",
    "plan_answer",
    "prompt_tokens",
    "request_rng",
    "schema_instance",
    "split_json",
    "split_words",
]

VOCABULARY: tuple[str, ...] = tuple(
    """the a model route request answer token stream server client latency budget cost cheap strong fast slow small
    large simple complex question reason step plan check test value field list table query cache queue worker thread
    event chunk byte packet signal router gateway policy rule label score weight layer head vector prompt context
    window memory store record index search result error retry timeout fallback chain category confidence threshold
    sample batch epoch metric report summary title note draft code function method class module package library
    config option default setting user team project task issue change review merge branch commit release version
    build deploy monitor alert graph chart trend peak load traffic region zone node cluster shard replica backup
    restore secret key token session cookie header body status path method and or but with from into over under
    about after before while when where which that this these those each every some many few more most less
    quickly clearly simply carefully usually often rarely always never again still already soon later
    now today""".split()  # noqa: SIM905  (words read better as a block)
)

_SENTENCE_WORDS = (6, 14)
_JSON_PIECE_CHARS = (4, 8)
_MAX_DEPTH = 6


class BadRequest(ValueError):
    """The request cannot be answered as sent; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class Answer:
    """One planned answer. `pieces` are the streamed deltas (content, or tool-call arguments) in order."""

    kind: Literal["text", "tool_call"]
    pieces: list[str]
    finish_reason: str
    tool_name: str = ""
    tool_call_id: str = ""


def request_rng(model: str, messages: list[Any], seed: object, config_seed: int) -> random.Random:
    """A generator seeded only by what must decide the content; `id`, time and the rest of the body do not."""
    key = json.dumps([config_seed, model, messages, seed], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def prompt_tokens(messages: list[Any]) -> int:
    # A deterministic estimate, not a tokenizer: about 4 characters per token plus a per-message overhead.
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        total += math.ceil(len(content) / 4) + 4 if isinstance(content, str) else 4
    return total


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(VOCABULARY) for _ in range(n)]


def generate_text(rng: random.Random, n_tokens: int) -> list[str]:
    """`n_tokens` tokens forming sentences; each token is a word with its leading space (the first has none)."""
    tokens: list[str] = []
    sentence_left = 0
    for i in range(n_tokens):
        word = rng.choice(VOCABULARY)
        if sentence_left == 0:
            sentence_left = rng.randint(*_SENTENCE_WORDS)
            word = word.capitalize()
        sentence_left -= 1
        if sentence_left == 0 or i == n_tokens - 1:
            word += "."
            sentence_left = 0
        tokens.append(word if i == 0 else " " + word)
    return tokens


def split_words(text: str) -> list[str]:
    """Split fixed text into word tokens (each with its leading whitespace); the pieces join back to `text`."""
    tokens = re.findall(r"\s*\S+", text)
    tail = text[sum(map(len, tokens)) :]
    if tail:
        if tokens:
            tokens[-1] += tail
        else:
            tokens = [tail]
    return tokens


def split_json(text: str, rng: random.Random) -> list[str]:
    """Small pieces (4 to 8 characters), so a client's incremental JSON parser sees awkward boundaries."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = start + rng.randint(*_JSON_PIECE_CHARS)
        pieces.append(text[start:end])
        start = end
    return pieces


def _phrase(rng: random.Random, low: int = 2, high: int = 5) -> str:
    return " ".join(_words(rng, rng.randint(low, high)))


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#"):
        raise BadRequest(f"unsupported $ref {ref!r}: only local references are", "response_format")
    node: Any = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise BadRequest(f"unresolvable $ref {ref!r}", "response_format")
        node = node[part]
    return node


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        value = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    elif fmt == "date-time":
        value = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    elif fmt == "email":
        value = f"{rng.choice(VOCABULARY)}@example.com"
    elif fmt in ("uri", "url"):
        value = f"https://example.com/{rng.choice(VOCABULARY)}"
    elif fmt == "uuid":
        value = f"{rng.getrandbits(32):08x}-0000-4000-8000-{rng.getrandbits(48):012x}"
    else:
        value = _phrase(rng)
    min_length, max_length = schema.get("minLength"), schema.get("maxLength")
    if isinstance(min_length, int) and len(value) < min_length:
        value = value + "x" * (min_length - len(value))
    if isinstance(max_length, int) and len(value) > max_length:
        value = value[:max_length]
    return value


def _number(schema: dict[str, Any], rng: random.Random, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low = 0 if low is None else low
    high = low + 100 if high is None else high
    if integer:
        low_i = math.ceil(low) + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
        high_i = math.floor(high) - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
        return rng.randint(low_i, max(low_i, high_i))
    return round(rng.uniform(low, high), 2) if high > low else low


def schema_instance(schema: Any, rng: random.Random, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A JSON value valid against `schema`, for the subset models produce: object/properties/required, string
    (enum, format, length), integer, number, boolean, null, array/items, $defs/$ref, anyOf/oneOf (first branch),
    allOf (merged), const."""
    if not isinstance(schema, dict):
        return _phrase(rng)
    root = schema if root is None else root
    if "$ref" in schema:
        if depth > _MAX_DEPTH * 2:
            raise BadRequest("the schema's $ref recursion has no finite instance", "response_format")
        return schema_instance(_resolve(schema["$ref"], root), rng, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema_instance(schema[key][0], rng, root, depth)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for branch in schema["allOf"]:
            branch = _resolve(branch["$ref"], root) if isinstance(branch, dict) and "$ref" in branch else branch
            if isinstance(branch, dict):
                merged["properties"] = {**merged.get("properties", {}), **branch.get("properties", {})}
                merged["required"] = [*merged.get("required", []), *branch.get("required", [])]
                merged.update({k: v for k, v in branch.items() if k not in ("properties", "required")})
        return schema_instance(merged, rng, root, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or properties)
        # Deep in a recursive schema only the required fields are generated, so the instance stays finite.
        names = [n for n in properties if depth < _MAX_DEPTH or n in required]
        value = {name: schema_instance(properties[name], rng, root, depth + 1) for name in names}
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict) and extra and depth < _MAX_DEPTH:
            value[rng.choice(VOCABULARY)] = schema_instance(extra, rng, root, depth + 1)
        return value
    if kind == "array":
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 3)))
        count = low if depth >= _MAX_DEPTH else min(max(rng.randint(2, 3), low), high)
        prefix: list[Any] = schema["prefixItems"] if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items", {})
        return [schema_instance(prefix[i] if i < len(prefix) else items, rng, root, depth + 1) for i in range(count)]
    if kind == "string":
        return _string(schema, rng)
    if kind in ("integer", "number"):
        return _number(schema, rng, kind == "integer")
    if kind == "boolean":
        return rng.random() < 0.5
    return None


def _generic_object(rng: random.Random) -> dict[str, Any]:
    return {
        "title": _phrase(rng, 2, 4).capitalize(),
        "summary": _phrase(rng, 8, 12).capitalize() + ".",
        "steps": [_phrase(rng, 3, 5) for _ in range(3)],
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _structured_schema(response_format: Any) -> tuple[bool, Any]:
    """(wants JSON, its schema or None) from `response_format`, in OpenAI's and llama-cpp-python's dialects."""
    if response_format is None:
        return False, None
    if not isinstance(response_format, dict):
        raise BadRequest("response_format must be an object", "response_format")
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise BadRequest("response_format.json_schema must be an object", "response_format")
        return True, spec.get("schema")
    if kind == "json_object":
        return True, response_format.get("schema")
    if kind in ("text", None):
        return False, None
    raise BadRequest(f"unsupported response_format type {kind!r}", "response_format")


def _chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools")
    if not tools:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise BadRequest("tools must be a list of objects", "tools")
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    functions: list[dict[str, Any]] = [t["function"] if isinstance(t.get("function"), dict) else {} for t in tools]
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        for function in functions:
            if function.get("name") == name:
                return function
        raise BadRequest(f"tool_choice names {name!r}, which is not among the tools", "tool_choice")
    return functions[0]


def plan_answer(
    body: dict[str, Any],
    *,
    completion_tokens: int,
    reply: str | None,
    tool_arguments: dict[str, Any] | None,
    config_seed: int,
) -> Answer:
    """The whole answer to `body` (already checked to have `model` and `messages`), as the pieces to stream."""
    rng = request_rng(body["model"], body["messages"], body.get("seed"), config_seed)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    limit = limit if isinstance(limit, int) and limit > 0 else None
    tool = _chosen_tool(body)
    if tool is not None:
        name = str(tool.get("name", "tool"))
        parameters = tool.get("parameters")
        if tool_arguments is not None:
            arguments = tool_arguments
        else:
            # A function without `parameters` takes an empty object, as OpenAI's function calling defines.
            arguments = schema_instance(
                parameters if isinstance(parameters, dict) and parameters else {"type": "object"}, rng
            )
        call_id = f"call_{rng.getrandbits(96):024x}"
        answer = Answer("tool_call", split_json(_dumps(arguments), rng), "tool_calls", name, call_id)
    else:
        wants_json, schema = _structured_schema(body.get("response_format"))
        if wants_json:
            text = (
                reply if reply is not None else _dumps(schema_instance(schema, rng) if schema else _generic_object(rng))
            )
            answer = Answer("text", split_json(text, rng), "stop")
        elif reply is not None:
            answer = Answer("text", split_words(reply), "stop")
        else:
            answer = Answer("text", generate_text(rng, completion_tokens), "stop")
    if limit is not None and len(answer.pieces) > limit:
        answer.pieces = answer.pieces[:limit]
        answer.finish_reason = "length"
    return answer
