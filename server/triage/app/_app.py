"""The Starlette app: routes, lifespan, error handlers. Handlers stay thin: the Gateway does the work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from triage._config import TriageConfig, load_config
from triage._exceptions import TriageError, UpstreamError
from triage.app._auth import Caller
from triage.app._gateway import Gateway, Routed
from triage.app._http import (
    ClientGone,
    DisconnectWatch,
    http_error_handler,
    read_json,
    triage_error_handler,
    unexpected_error_handler,
)
from triage.app._learning import learning_routes
from triage.app._limits import Lease
from triage.app._openapi import openapi
from triage.app._schemas import ChatCompletionRequest, TriageChatRequest, parse_body
from triage.app._tracing import TracingMiddleware
from triage.classify import Classifier
from triage.learn import Store, make_store
from triage.route import Usage
from triage.stream import Answer, EventStream, StreamTally, openai_chunks, ui_events
from triage.stream.structured import IncrementalJSONParser, SchemaValidator

__all__ = ["create_app"]

logger = logging.getLogger("triage")

# A client that went away before the response started gets nothing; 499 is nginx's name for that, in our logs.
_CLIENT_CLOSED = 499

C = TypeVar("C", bound=ChatCompletionRequest)


@dataclass(slots=True)
class _Call:
    """One model request's caller and its concurrency slot, which a streamed answer takes over."""

    gateway: Gateway
    caller: Caller
    lease: Lease
    handed_over: bool = False

    def hand_over(self) -> Lease:
        self.handed_over = True
        return self.lease


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _settler(
    gateway: Gateway, routed: Routed, model: str, endpoint: str
) -> Callable[[StreamTally, str], dict[str, Any]]:
    """Accounting for one answer, to run once when it ends however it ends; returns the `usage` event's data."""

    def settle(tally: StreamTally, status: str) -> dict[str, Any]:
        usage = tally.final_usage(routed.prompt_chars)
        cost = gateway.settle(routed, model, usage, status, endpoint)  # type: ignore[arg-type]
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "estimated": usage.estimated,
            "cost_usd": cost.cost_usd,
            "baseline_cost_usd": cost.baseline_cost_usd,
            "saved_usd": cost.saved_usd - routed.wasted_cost_usd,
            "wasted_speculative_tokens": routed.wasted.prompt_tokens + routed.wasted.completion_tokens,
            "wasted_cost_usd": routed.wasted_cost_usd,
        }

    return settle


async def _read_chat(request: Request, gateway: Gateway, model: type[C]) -> tuple[dict[str, Any], C]:
    """The body (as sent, for pass-through) and its validated form: bounded, JSON, the request's shape."""
    body = await read_json(request, limit=gateway.config.server.max_body_bytes)
    chat = parse_body(model, body)
    # A schema the validator cannot compile is the client's mistake (422), found before any model is asked.
    if chat.json_schema is not None:
        SchemaValidator(chat.json_schema)
    return body, chat


async def _guarded(request: Request, endpoint: str, handler: Callable[[_Call], Awaitable[Response]]) -> Response:
    """The frame of the model endpoints: key, rate limit, concurrency slot, client gone, error metrics."""
    gateway = _gateway(request)
    await gateway.ensure_started()
    call: _Call | None = None
    try:
        caller = gateway.keys.authenticate(request)
        call = _Call(gateway, caller, await gateway.admit(caller))  # rate limit, then a slot (Redis if shared)
        return await handler(call)
    except ClientGone:
        gateway.metrics.requests.labels(endpoint, "client_closed").inc()
        return Response(status_code=_CLIENT_CLOSED)
    except TriageError as exc:
        gateway.metrics.requests.labels(endpoint, str(exc.status_code)).inc()
        if isinstance(exc, UpstreamError) and exc.model is not None:
            gateway.metrics.upstream_errors.labels(exc.model, type(exc).__name__).inc()
        raise
    finally:
        if call is not None and not call.handed_over:
            call.lease.release()


def _sse(gateway: Gateway, answer: Answer[Any], body: AsyncIterator[bytes], routed: Routed,
         listener: asyncio.Future[Any]) -> Response:
    server = gateway.config.server
    gateway.drain.track(answer)
    response = EventStream(
        body, headers=routed.headers(answer.model), ping=server.ping_interval, send_timeout=server.send_timeout,
        background=answer.aclose, listener=listener,
    )
    model = answer.model  # not the answer itself: the response must not keep it alive (see EventStream)

    def observe_ttft() -> None:
        gateway.metrics.ttft_seconds.labels(model).observe(time.perf_counter() - routed.received)

    response.after_first_event = observe_ttft
    return response


async def chat_completions(request: Request) -> Response:
    endpoint = "chat.completions"

    async def handle(call: _Call) -> Response:
        gateway = call.gateway
        body, chat = await _read_chat(request, gateway, ChatCompletionRequest)
        routed, inputs = gateway.begin(chat, body["messages"], call.caller.key_id)
        with DisconnectWatch(request.receive) as watch, gateway.failing(routed, endpoint):
            if chat.stream:
                stream = await watch.until(gateway.open_stream(chat, body, routed, inputs))
                listener = watch.hand_over()
            else:
                data = await watch.until(gateway.open_completion(chat, body, routed, inputs))
        if chat.stream:
            answer = Answer(stream, _settler(gateway, routed, stream.model, endpoint), call.hand_over())
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return _sse(gateway, answer, openai_chunks(answer, include_usage=include_usage), routed, listener)
        model = str(data["model"])
        tally = StreamTally()
        raw_usage = data.get("usage") or {}
        if raw_usage:
            tally.usage = Usage(int(raw_usage.get("prompt_tokens", 0)), int(raw_usage.get("completion_tokens", 0)))
        else:
            messages = (choice.get("message") or {} for choice in data["choices"])
            tally.completion_chars = sum(len(str(message.get("content") or "")) for message in messages)
        _settler(gateway, routed, model, endpoint)(tally, "ok")
        return JSONResponse(data, headers=routed.headers(model))

    return await _guarded(request, endpoint, handle)


async def triage_chat(request: Request) -> Response:
    endpoint = "triage.chat"

    async def handle(call: _Call) -> Response:
        gateway = call.gateway
        body, chat = await _read_chat(request, gateway, TriageChatRequest)
        option = chat.structured_schema()
        parser = IncrementalJSONParser(SchemaValidator(option.schema_)) if option is not None else None
        routed, inputs = gateway.begin(chat, body["messages"], call.caller.key_id)
        with DisconnectWatch(request.receive) as watch, gateway.failing(routed, endpoint):
            stream = await watch.until(gateway.open_stream(chat, chat.upstream_body(body), routed, inputs))
            listener = watch.hand_over()
        answer = Answer(stream, _settler(gateway, routed, stream.model, endpoint), call.hand_over())
        events = ui_events(answer, route=routed.route_event(stream.model), parser=parser)
        return _sse(gateway, answer, events, routed, listener)

    return await _guarded(request, endpoint, handle)


async def list_models(request: Request) -> Response:
    gateway = _gateway(request)
    gateway.keys.authenticate(request)
    config = gateway.config
    created = int(time.time())
    names = [config.router_name, *config.models]
    models = [{"id": name, "object": "model", "created": created, "owned_by": "triage"} for name in names]
    return JSONResponse({"object": "list", "data": models})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    return Response(_gateway(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def static_dir() -> Path | None:
    """The demo UI's files: `TRIAGE_STATIC_DIR`, else `static/` of the source checkout Triage runs from."""
    configured = os.environ.get("TRIAGE_STATIC_DIR")
    path = Path(configured) if configured else Path(__file__).resolve().parents[3] / "static"
    return path if (path / "index.html").is_file() else None


def create_app(
    config: TriageConfig | None = None,
    *,
    classifier: Classifier | None = None,
    ui: bool = True,
    store: Store | Literal["config"] | None = "config",
    gateway: Gateway | None = None,
) -> Starlette:
    """The Triage ASGI app. Without `config`, the shipped demo configuration; `ui` serves the demo at `/`;
    `store` records decisions (default: SQLite at `store.path`; None: keep no records). `gateway` serves an
    already-built Gateway (its config, classifier and store) instead."""
    if gateway is None:
        config = config or load_config()
        if store == "config":
            store = make_store(config.store)  # SQLite, or PostgreSQL with store.url
        gateway = Gateway(config, classifier=classifier, store=store)
    config = gateway.config

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes: list[BaseRoute] = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/triage/chat", triage_chat, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *learning_routes(),
    ]
    ui_files = static_dir() if ui else None
    if ui_files is not None:
        routes.append(Mount("/", StaticFiles(directory=ui_files, html=True), name="ui"))
    middleware = []
    if gateway.tracing is not None:  # a client's trace context becomes the parent of its spans
        middleware.append(Middleware(TracingMiddleware))
    if config.server.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=config.server.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-api-key"],
            expose_headers=["x-triage-request-id", "x-triage-model", "x-triage-category", "x-triage-confidence",
                            "x-triage-reason", "x-triage-speculation"],
        ))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            TriageError: triage_error_handler,
            HTTPException: http_error_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
