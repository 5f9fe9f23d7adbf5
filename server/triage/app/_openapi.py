"""The OpenAPI 3.1 document of every endpoint Triage serves, at `GET /openapi.json`.

Request bodies come from the pydantic models that validate them (`_schemas`, `_learning`); the chat completion and
its chunks from openai's own types, since Triage passes the provider's answer through; the rest from the response
models of `_openapi_models`. All go through one `models_json_schema` call, which gives colliding names distinct
keys (openai's chat and chunk modules both define a `Choice`) and points every `$ref` at `#/components/schemas`.
The config then narrows what the models leave open: `model` to the router name and the configured models,
`category` to the routes.

Both SSE dialects are documented per event: before 3.2, OpenAPI reads a `text/event-stream` schema as one event,
`{event, data, id?, retry?}`, and each event's `data` is JSON described by `contentMediaType` + `contentSchema`.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from triage._config import TriageConfig
from triage._version import __version__
from triage.app._learning import FeedbackRequest
from triage.app._openapi_models import (
    UI_EVENTS,
    Correction,
    ErrorResponse,
    HeadReload,
    Health,
    ModelList,
    StatsReport,
)
from triage.app._schemas import ChatCompletionRequest, TriageChatRequest

__all__ = ["openapi", "openapi_document"]

_REF = "#/components/schemas/{model}"


_MODELS: tuple[type[BaseModel], ...] = (
    ChatCompletionRequest, TriageChatRequest, FeedbackRequest, ChatCompletion, ChatCompletionChunk, ErrorResponse,
    ModelList, Health, Correction, StatsReport, HeadReload, *UI_EVENTS.values(),
)  # fmt: skip


@functools.cache
def _components() -> tuple[dict[Any, dict[str, Any]], str]:
    """Each model's `$ref` and the schemas they point at (as JSON text: every document gets its own copy)."""
    refs, defs = models_json_schema([(model, "validation") for model in _MODELS], ref_template=_REF)
    return dict(refs), json.dumps(defs["$defs"])


def _json(ref: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


def _sse_data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


_REQUEST_ID_HEADERS = {
    "x-triage-request-id": ("the request's id: the `request_id` of POST /v1/feedback", True),
    "x-triage-model": ("the configured model that answered", True),
    "x-triage-reason": ("why: confident | low_confidence | rule | forced", True),
    "x-triage-speculation": ("hit | miss | off", True),
    "x-triage-category": ("the category the classifier chose (absent when the client named a model)", False),
    "x-triage-confidence": ("the classifier's confidence, 0..1 (absent when the client named a model)", False),
}
_ERRORS = {
    400: "invalid request: unreadable JSON, a field of the wrong shape (`param` names it), an unknown category",
    401: "missing or unknown API key",
    403: "the key lacks the role the endpoint needs",
    404: "unknown model, request id, or this server keeps no records",
    413: "body over `server.max_body_bytes`",
    422: "the JSON schema of a structured-output request is not a valid schema",
    429: "the key's rate limit is spent (or, with `redis.on_error: closed`, cannot be checked): retry after "
         "`retry-after` seconds",
    502: "every model of the route failed before its first token",
    503: "at the limit of concurrent requests (for the key or in total): retry after `retry-after` seconds",
    504: "every model of the route timed out before its first token",
}

_STORE_UNAVAILABLE = "the store's database is unreachable (`store_unavailable`): retry after `retry-after` seconds"


def openapi_document(config: TriageConfig) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a Triage server running `config`."""
    refs, text = _components()
    schemas: dict[str, Any] = json.loads(text)

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return copy.deepcopy(refs[(model, "validation")])

    def name(model: type[BaseModel]) -> str:
        return str(refs[(model, "validation")]["$ref"]).rsplit("/", 1)[1]

    models = [config.router_name, *config.models]
    for request_model in (ChatCompletionRequest, TriageChatRequest):
        schemas[name(request_model)]["properties"]["model"]["enum"] = models
    schemas[name(FeedbackRequest)]["properties"]["category"]["enum"] = list(config.categories)

    keyed = bool(config.auth.keys)
    error = ref(ErrorResponse)
    retry_after = {"retry-after": {"description": "seconds to wait", "required": True,
                                   "schema": {"type": "string", "pattern": "^[0-9]+$"}}}

    def errors(*statuses: int, store: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for status in statuses:
            if status in (401, 403) and not keyed:
                continue  # open access: no key is ever refused
            text = _STORE_UNAVAILABLE if store and status == 503 else _ERRORS[status]
            out[str(status)] = {"description": text, "content": _json(error)}
            if status in (429, 503):
                out[str(status)]["headers"] = retry_after
        return out

    def secured(role: str) -> dict[str, Any]:
        if not keyed:
            return {}
        return {"security": [{"bearer": []}, {"apiKey": []}],
                "x-triage-role": role}  # roles nest: client < reviewer < admin

    route_headers = {
        header: {"description": text, "required": required, "schema": {"type": "string"}}
        for header, (text, required) in _REQUEST_ID_HEADERS.items()
    }
    model_errors = errors(400, 401, 404, 413, 422, 429, 502, 503, 504)
    openai_event = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"anyOf": [
            {"const": "[DONE]"},
            _sse_data({"anyOf": [ref(ChatCompletionChunk), error]}),
        ]}},
    }
    ui_event = {"oneOf": [
        {"type": "object", "required": ["event", "data"],
         "properties": {"event": {"const": event}, "data": _sse_data(ref(model))}}
        for event, model in UI_EVENTS.items()
    ]}
    chat_completions = {
        "operationId": "createChatCompletion",
        "summary": "OpenAI's chat completions, routed",
        "description": f"`model: {config.router_name!r}` routes the request; a configured model's name bypasses "
                       "routing. With `stream: true`, OpenAI's chunks end with `data: [DONE]`; a failure after the "
                       "first token ends the stream with `data: {\"error\": ...}` and no `[DONE]`.",
        **secured("client"),
        "requestBody": {"required": True, "content": _json(ref(ChatCompletionRequest))},
        "responses": {
            "200": {
                "description": "the answer (`stream: false`) or its chunks (`stream: true`)",
                "headers": route_headers,
                "content": {**_json(ref(ChatCompletion)), "text/event-stream": {"schema": openai_event}},
            },
            **model_errors,
        },
    }
    triage_chat = {
        "operationId": "triageChat",
        "summary": "The browser's event stream: route, delta | patch | tool_call, usage, then done or error",
        "description": "Always streamed. `structured` asks for JSON against a schema, sent as `patch` events in a "
                       "compact encoding (README, \"The browser event stream\"). A stream ends with `done` or "
                       "`error`, never silently.",
        **secured("client"),
        "requestBody": {"required": True, "content": _json(ref(TriageChatRequest))},
        "responses": {
            "200": {"description": "named events, each `data` JSON (an object; for `patch`, the compact encoding)",
                    "headers": route_headers,
                    "content": {"text/event-stream": {"schema": ui_event}}},
            **model_errors,
        },
    }
    moment = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"},
                        {"type": "string", "format": "date"}]}
    stats_params = [
        {"name": "bucket", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["hour", "day"], "default": "hour"}},
        {"name": "since", "in": "query", "required": False, "schema": moment,
         "description": "unix seconds or ISO 8601 (UTC unless it names an offset); default: a day (hour buckets) "
                        "or 30 days (day buckets) before `until`"},
        {"name": "until", "in": "query", "required": False, "schema": moment,
         "description": "unix seconds or ISO 8601; default: now"},
    ]
    paths: dict[str, Any] = {
        "/v1/chat/completions": {"post": chat_completions},
        "/v1/triage/chat": {"post": triage_chat},
        "/v1/models": {"get": {
            "operationId": "listModels", "summary": "the router name and the configured models", **secured("client"),
            "responses": {"200": {"description": "models", "content": _json(ref(ModelList))}, **errors(401)},
        }},
        "/v1/feedback": {"post": {
            "operationId": "addCorrection", "summary": "a reviewer's verdict on one request's route",
            **secured("reviewer"),
            "requestBody": {"required": True, "content": _json(ref(FeedbackRequest))},
            "responses": {"200": {"description": "the stored correction", "content": _json(ref(Correction))},
                          **errors(400, 401, 403, 404, 413, 503, store=True)},
        }},
        "/v1/stats": {"get": {
            "operationId": "getStats", "summary": "per-bucket aggregates of decisions and corrections",
            **secured("reviewer"), "parameters": stats_params,
            "responses": {"200": {"description": "buckets and totals", "content": _json(ref(StatsReport))},
                          **errors(400, 401, 403, 404, 503, store=True)},
        }},
        "/v1/admin/reload": {"post": {
            "operationId": "reloadHead", "summary": "load the classifier head version in service now",
            **secured("admin"),
            "responses": {"200": {"description": "the version loaded", "content": _json(ref(HeadReload))},
                          **errors(400, 401, 403)},
        }},
        "/healthz": {"get": {
            "operationId": "health", "summary": "liveness",
            "responses": {"200": {"description": "alive", "content": _json(ref(Health))}},
        }},
        "/metrics": {"get": {
            "operationId": "metrics", "summary": "Prometheus metrics",
            "responses": {"200": {"description": "text exposition format 0.0.4",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "this document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}},
        }},
    }
    components: dict[str, Any] = {"schemas": schemas}
    if keyed:
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "a client key: `Authorization: Bearer`"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "the same key"},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Triage", "version": __version__,
                 "description": "An LLM-routing gateway: each chat request is classified and sent to the right model."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": components,
    }


async def openapi(request: Request) -> Response:
    # Built once per app: the config cannot change under a running app.
    state = request.app.state
    body: bytes | None = getattr(state, "openapi_body", None)
    if body is None:
        body = json.dumps(openapi_document(state.gateway.config), separators=(",", ":")).encode()
        state.openapi_body = body
    return Response(body, media_type="application/json")
