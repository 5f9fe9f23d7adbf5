"""Structured answers: the model's JSON text parsed as it streams (`_parser`, on the grammar of `_grammar`), each
field checked against the request's JSON schema as it completes (`_schema`), and the document's growth as field
patches (`_patch`) that a browser applies to render every field as it arrives, sent in a compact encoding (`_wire`:
the encoder and the reference decoder)."""

from triage.stream.structured._parser import IncrementalJSONParser
from triage.stream.structured._patch import JSONValue, Patch, apply_patch, coalesce
from triage.stream.structured._schema import SchemaValidator
from triage.stream.structured._wire import WireDecoder, WireEncoder

__all__ = [
    "IncrementalJSONParser",
    "JSONValue",
    "Patch",
    "SchemaValidator",
    "WireDecoder",
    "WireEncoder",
    "apply_patch",
    "coalesce",
]
