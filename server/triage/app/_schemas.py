"""Request bodies, validated with pydantic. They also feed the OpenAPI document Triage serves.

Validation is deliberately about shape, not policy: fields Triage does not know pass through to the provider
untouched (`extra="allow"`), so a newer OpenAI parameter works without a Triage release.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from triage._exceptions import InvalidRequest

__all__ = [
    "DEFAULT_STRUCTURED_SCHEMA",
    "ChatCompletionRequest",
    "ChatMessageIn",
    "ResponseFormat",
    "StructuredOption",
    "Tool",
    "TriageChatRequest",
    "parse_body",
]

M = TypeVar("M", bound=BaseModel)


class _Open(BaseModel):
    # Strict: the body goes upstream as sent, so `top_p: false`, `"0.5"`, `structured: 0` are refused here (400).
    model_config = ConfigDict(extra="allow", strict=True)


class ChatMessageIn(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class FunctionDef(_Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: FunctionDef


class JSONSchemaFormat(_Open):
    name: str = Field("response", min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(_Open):
    include_usage: StrictBool = False


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=1)  # one answer: routing and accounting are per answer

    @field_validator("max_tokens", "max_completion_tokens", "n", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        # JSON Schema counts 5.0 as an integer; strict mode alone would refuse it.
        return int(value) if isinstance(value, float) and value.is_integer() else value

    @property
    def json_schema(self) -> dict[str, Any] | None:
        if self.response_format is not None and self.response_format.json_schema is not None:
            return self.response_format.json_schema.schema_
        return None

    def needs(self) -> tuple[str, ...]:
        """Capabilities the answering model must have."""
        needs = []
        if self.tools:
            needs.append("tools")
        if self.response_format is not None and self.response_format.type != "text":
            needs.append("json")
        return tuple(needs)


DEFAULT_STRUCTURED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "steps": {"type": "array", "items": {"type": "string"}},
        "follow_up_questions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "summary", "steps", "follow_up_questions"],
}


class StructuredOption(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("answer", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    schema_: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_STRUCTURED_SCHEMA), alias="schema")


class TriageChatRequest(ChatCompletionRequest):
    """The browser endpoint's body: a chat request (always streamed) plus `structured`, which asks the model for
    JSON against a schema (`true`: title, summary, steps, follow-up questions) and streams it as field patches."""

    model: str = Field("auto", min_length=1, max_length=256)
    structured: StructuredOption | bool = False

    def needs(self) -> tuple[str, ...]:
        needs = super().needs()
        if self.structured_schema() is not None and "json" not in needs:
            needs = (*needs, "json")
        return needs

    def structured_schema(self) -> StructuredOption | None:
        if self.structured is True:
            return StructuredOption()
        return self.structured or None

    def upstream_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body sent on to the model: `structured` becomes `response_format`; the answer is always streamed."""
        out = {k: v for k, v in body.items() if k != "structured"}
        out["stream"] = True
        option = self.structured_schema()
        if option is not None:
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": option.name, "schema": option.schema_, "strict": True},
            }
        return out


def parse_body(model: type[M], data: object) -> M:
    """Validate `data` as `model`; the first problem becomes a 400 naming the parameter."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        count = exc.error_count()
        more = f" (and {count - 1} more)" if count > 1 else ""
        raise InvalidRequest(f"{param or 'body'}: {first['msg']}{more}", param=param, code="invalid_value") from None
