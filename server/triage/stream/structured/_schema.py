"""Validation of a streamed structured answer against the request's JSON schema, field by field.

`IncrementalJSONParser` asks this module, as each value opens, for the sub-schema that applies to it (through
`properties`, `patternProperties`, `additionalProperties`, `prefixItems`, `items`, local `$ref`s into `$defs` or
`definitions`, and an `anyOf`/`oneOf` of which exactly one branch admits the container's type, as pydantic's
`Optional[Model]` produces). As each value completes it is checked against that sub-schema, so an error names the
path while the answer is still streaming. Where no sub-schema can be found (an ambiguous `anyOf`, `allOf`, a
remote `$ref`), the value is not checked on its own; the whole document is always checked in full at its end.

A completed container is checked against a *shallow* copy of its schema whose member schemas are `true`: its
members were checked as they completed, so re-checking the subtree at every level would make the total cost grow
with depth times size. Its own keywords (`required`, `additionalProperties: false`, `minItems`, ...) still apply.

The checking itself is `jsonschema`'s (the schema's own `$schema` draft, 2020-12 by default): a maintained
implementation of every keyword beats a hand-written subset, and its error messages are clear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from triage._exceptions import StructuredOutputError, UnprocessableRequest
from triage.stream.structured._patch import escape_token, split_pointer

__all__ = ["Schema", "SchemaValidator"]

# A JSON schema is an object or a boolean (true admits everything, false nothing).
Schema: TypeAlias = "Mapping[str, Any] | bool"

# Keywords whose meaning depends on the members' schemas in ways a shallow copy cannot keep.
_DEEP_KEYWORDS = frozenset(
    {"$ref", "$dynamicRef", "anyOf", "oneOf", "allOf", "not", "if", "then", "else", "dependentSchemas",
     "unevaluatedProperties", "unevaluatedItems", "dependencies"}
)  # fmt: skip
_MAX_REF_HOPS = 32


class SchemaValidator:
    """Checks values of one document against one JSON schema; raises `UnprocessableRequest` for an invalid schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        cls = validator_for(schema, default=Draft202012Validator)
        try:
            cls.check_schema(dict(schema))
        except SchemaError as exc:
            raise UnprocessableRequest(f"invalid JSON schema: {exc.message}", param="response_format") from exc
        self.schema = schema
        self._root: Validator = cls(schema)
        # id(schema) -> (schema, validator): the schema is kept alive so its id stays unique.
        self._validators: dict[int, tuple[Schema, Validator]] = {}
        self._shallow: dict[int, tuple[Mapping[str, Any], Mapping[str, Any] | None]] = {}

    @classmethod
    def from_response_format(cls, response_format: Mapping[str, Any] | None) -> SchemaValidator | None:
        """The validator for an OpenAI `response_format` (`{"type": "json_schema", "json_schema": {"schema": ...}}`,
        or llama-cpp's `{"type": "json_object", "schema": ...}`); None when it carries no schema."""
        if not response_format:
            return None
        schema: object = None
        if response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
        elif response_format.get("type") == "json_object":
            schema = response_format.get("schema")
        return cls(schema) if isinstance(schema, Mapping) else None

    # -- finding sub-schemas ---------------------------------------------------------------------------------------

    def _deref(self, schema: Schema | None) -> Schema | None:
        for _ in range(_MAX_REF_HOPS):
            if not isinstance(schema, Mapping) or "$ref" not in schema:
                return schema
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                return None  # remote or anchor refs: left to jsonschema's whole-value check
            target: Any = self.schema
            try:
                for token in split_pointer(ref[1:]):
                    target = target[int(token)] if isinstance(target, list) else target[token]
            except (KeyError, IndexError, ValueError, TypeError, StructuredOutputError):
                return None
            schema = target if isinstance(target, (Mapping, bool)) else None
        return None

    def enter(self, schema: Schema | None, kind: Literal["object", "array"]) -> Mapping[str, Any] | None:
        """The schema to look members up in, for a container of `kind` whose own schema is `schema`."""
        for _ in range(_MAX_REF_HOPS):
            schema = self._deref(schema)
            if not isinstance(schema, Mapping):
                return None
            branches = schema.get("anyOf") or schema.get("oneOf")
            if isinstance(branches, list):
                fitting = [b for b in map(self._deref, branches) if _admits(b, kind)]
                if len(fitting) != 1:
                    return None  # ambiguous: members are checked with the whole value
                schema = fitting[0]
                continue
            all_of = schema.get("allOf")
            if isinstance(all_of, list):
                if len(all_of) != 1:
                    return None
                schema = all_of[0]
                continue
            return schema if _admits(schema, kind) else None
        return None

    def child(self, container: Mapping[str, Any] | None, key: str | int) -> Schema | None:
        """The schema of member `key` (a str in an object, an int in an array) of a container entered with `enter`."""
        if container is None:
            return None
        if isinstance(key, str):
            properties = container.get("properties")
            if isinstance(properties, Mapping) and key in properties:
                sub: Schema = properties[key]
                return sub
            patterns = container.get("patternProperties")
            if isinstance(patterns, Mapping):
                matching = [s for p, s in patterns.items() if re.search(p, key)]
                if matching:
                    return matching[0] if len(matching) == 1 else None
            additional = container.get("additionalProperties")
            return additional if isinstance(additional, (Mapping, bool)) else None
        prefix = container.get("prefixItems")
        if isinstance(prefix, list) and key < len(prefix):
            item: Schema = prefix[key]
            return item
        items = container.get("items")
        if isinstance(items, list):  # drafts before 2020-12: tuple validation
            return items[key] if key < len(items) else _schema_or_none(container.get("additionalItems"))
        return _schema_or_none(items)

    # -- checking --------------------------------------------------------------------------------------------------

    def _validator(self, schema: Schema) -> Validator:
        cached = self._validators.get(id(schema))
        if cached is None or cached[0] is not schema:
            # evolve keeps the root's resolver, so "#/$defs/..." refs inside a sub-schema still resolve.
            cached = (schema, self._root.evolve(schema=schema))
            self._validators[id(schema)] = cached
        return cached[1]

    def shallow(self, schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """`schema` with every member schema replaced by `true`, or None if that would change its meaning."""
        cached = self._shallow.get(id(schema))
        if cached is None or cached[0] is not schema:
            cached = (schema, _make_shallow(schema))
            self._shallow[id(schema)] = cached
        return cached[1]

    def check(self, value: Any, schema: Schema, path: str, *, offset: int | None = None) -> None:
        """Raise StructuredOutputError naming the path if `value`, found at `path`, does not fit `schema`."""
        error = best_match(self._validator(schema).iter_errors(value))
        if error is None:
            return
        where = path + "".join("/" + escape_token(str(token)) for token in error.absolute_path)
        # A `false` schema (e.g. a member that `additionalProperties: false` forbids) has no keyword to blame.
        message = "not allowed by the schema" if error.validator is None else error.message
        raise StructuredOutputError(f"{where or '/'}: {message}", path=where, offset=offset)

    def check_document(self, value: Any, *, offset: int | None = None) -> None:
        """The whole answer against the whole schema."""
        self.check(value, self.schema, "", offset=offset)


def _schema_or_none(schema: object) -> Schema | None:
    return schema if isinstance(schema, (Mapping, bool)) else None


def _admits(schema: Schema | None, kind: str) -> bool:
    if schema is None or schema is False:
        return False
    if schema is True:
        return True
    declared = schema.get("type")
    if declared is None:
        return True
    return kind == declared if isinstance(declared, str) else kind in declared


def _make_shallow(schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if _DEEP_KEYWORDS.intersection(schema):
        return None
    shallow = dict(schema)
    for keyword in ("properties", "patternProperties"):
        if isinstance(schema.get(keyword), Mapping):
            shallow[keyword] = dict.fromkeys(schema[keyword], True)
    for keyword in ("additionalProperties", "items", "additionalItems"):
        if isinstance(schema.get(keyword), Mapping):
            shallow[keyword] = True
    for keyword in ("prefixItems", "items"):
        if isinstance(schema.get(keyword), list):
            shallow[keyword] = [True] * len(schema[keyword])
    return shallow
