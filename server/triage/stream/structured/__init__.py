"""Structured answers: the model's JSON text parsed as it streams (`_parser`, on the grammar of `_grammar`), each
field checked against the request's JSON schema as it completes (`_schema`), and the document's growth as field
patches (`_patch`) that a browser applies to render every field as it arrives."""

from triage.stream.structured._parser import IncrementalJSONParser
from triage.stream.structured._patch import JSONValue, Patch, apply_patch, coalesce
from triage.stream.structured._schema import SchemaValidator

__all__ = ["IncrementalJSONParser", "JSONValue", "Patch", "SchemaValidator", "apply_patch", "coalesce"]
