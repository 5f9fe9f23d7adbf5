"""The Starlette app: routes, lifespan, error handlers. Handlers stay thin: the Gateway does the work."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._accounting import Usage
from ._classifier import Classifier, message_text
from ._config import TriageConfig, load_config
from ._exceptions import TriageError, UpstreamError
from ._gateway import Gateway, Routed, StreamTally
from ._http import (
    ClientGone,
    http_error_handler,
    read_json,
    triage_error_handler,
    unexpected_error_handler,
    until_disconnect,
)
from ._openai_stream import openai_chunks
from ._schemas import ChatCompletionRequest, parse_body

__all__ = ["create_app"]

logger = logging.getLogger("triage")

# A client that went away before the response started gets nothing; 499 is nginx's name for that, in our logs.
_CLIENT_CLOSED = 499


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def chat_completions(request: Request) -> Response:
    gateway = _gateway(request)
    await gateway.ensure_started()
    body = await read_json(request, limit=gateway.config.server.max_body_bytes)
    chat = parse_body(ChatCompletionRequest, body)
    try:
        routed = await until_disconnect(gateway.route(chat), request.receive)
        if chat.stream:
            return await _stream_openai(gateway, routed, chat, body, request)
        return await _complete_openai(gateway, routed, chat, body, request)
    except ClientGone:
        gateway.metrics.requests.labels("chat.completions", "client_closed").inc()
        return Response(status_code=_CLIENT_CLOSED)
    except TriageError as exc:
        gateway.metrics.requests.labels("chat.completions", str(exc.status_code)).inc()
        if isinstance(exc, UpstreamError) and exc.model is not None:
            gateway.metrics.upstream_errors.labels(exc.model, type(exc).__name__).inc()
        raise


def _prompt_chars(chat: ChatCompletionRequest) -> int:
    return sum(len(message_text(m.model_dump())) for m in chat.messages)


async def _stream_openai(
    gateway: Gateway, routed: Routed, chat: ChatCompletionRequest, body: dict[str, Any], request: Request
) -> Response:
    stream = await until_disconnect(gateway.upstreams.stream_chain(routed.plan.models, body), request.receive)
    gateway.metrics.ttft_seconds.labels(stream.model).observe(time.perf_counter() - routed.received)
    prompt_chars = _prompt_chars(chat)

    def on_end(tally: StreamTally, status: str) -> None:
        gateway.account(routed, stream.model, tally.final_usage(prompt_chars))
        gateway.metrics.requests.labels("chat.completions", status).inc()
        gateway.metrics.request_seconds.labels("chat.completions").observe(time.perf_counter() - routed.received)

    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    server = gateway.config.server
    return EventSourceResponse(
        openai_chunks(stream, include_usage=include_usage, on_end=on_end),
        headers=routed.headers(stream.model),
        ping=server.ping_interval,
        send_timeout=server.send_timeout,
        sep="\n",
    )


async def _complete_openai(
    gateway: Gateway, routed: Routed, chat: ChatCompletionRequest, body: dict[str, Any], request: Request
) -> Response:
    data = await until_disconnect(gateway.upstreams.complete_chain(routed.plan.models, body), request.receive)
    model = str(data["model"])
    raw_usage = data.get("usage") or {}
    if raw_usage:
        usage = Usage(int(raw_usage.get("prompt_tokens", 0)), int(raw_usage.get("completion_tokens", 0)))
    else:
        tally = StreamTally()
        tally.completion_chars = sum(len(str((c.get("message") or {}).get("content") or "")) for c in data["choices"])
        usage = tally.final_usage(_prompt_chars(chat))
    gateway.account(routed, model, usage)
    gateway.metrics.requests.labels("chat.completions", "ok").inc()
    gateway.metrics.request_seconds.labels("chat.completions").observe(time.perf_counter() - routed.received)
    return JSONResponse(data, headers=routed.headers(model))


async def list_models(request: Request) -> Response:
    config = _gateway(request).config
    created = int(time.time())
    names = [config.router_name, *config.models]
    return JSONResponse(
        {"object": "list", "data": [{"id": n, "object": "model", "created": created, "owned_by": "triage"} for n in names]}
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    return Response(_gateway(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def create_app(config: TriageConfig | None = None, *, classifier: Classifier | None = None) -> Starlette:
    """The Triage ASGI app. Without `config`, the shipped demo configuration."""
    config = config or load_config()
    gateway = Gateway(config, classifier=classifier)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={
            TriageError: triage_error_handler,
            HTTPException: http_error_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
