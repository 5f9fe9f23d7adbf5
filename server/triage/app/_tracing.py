"""OpenTelemetry traces: one span per routed request, after the GenAI semantic conventions, with a child span for
classification and one for the upstream call. Off by default; the standard OTEL_* variables turn it on and steer it:

    OTEL_TRACES_EXPORTER=otlp|console|none   on when set (and not `none`), or when an OTLP endpoint is set
    OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT     where to send (OTLP needs `pip install 'triage[otlp]'`)
    OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL     http/protobuf (default) or grpc
    OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_*, OTEL_PROPAGATORS
    OTEL_SDK_DISABLED=true                   off, whatever else is set

    chat {model}           SERVER   gen_ai.operation.name, gen_ai.request.model, gen_ai.response.model,
    │                               gen_ai.provider.name, gen_ai.usage.input_tokens/output_tokens,
    │                               gen_ai.response.time_to_first_chunk, triage.category, triage.confidence,
    │                               triage.speculation, triage.reason, triage.request_id, triage.status
    ├── classify           INTERNAL triage.classifier, triage.category, triage.confidence
    └── chat {upstream}    CLIENT   gen_ai.request.model (the model asked), gen_ai.provider.name, server.address

The spans are made when the request's accounting runs (`Gateway.settle`, once per request), from the times the
gateway noted on the way: the request path itself does no tracing work, and a disabled tracer costs nothing. A
client's `traceparent` is honoured (`TracingMiddleware`). No prompt or completion text is ever put on a span.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from triage._config import TriageConfig
from triage._exceptions import ConfigError
from triage._types import ASGIApp, Receive, Scope, Send
from triage.classify import Decision
from triage.route import RoutePlan, Usage

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["Routed", "Tracing", "TracingMiddleware", "tracing_enabled"]


class Routed(Protocol):
    """What a span is made of: the gateway's `Routed` (not imported: the gateway imports this module)."""

    @property
    def request_id(self) -> str: ...
    @property
    def received(self) -> float: ...
    @property
    def plan(self) -> RoutePlan | None: ...
    @property
    def decision(self) -> Decision | None: ...
    @property
    def speculation(self) -> str: ...
    @property
    def first_token_at(self) -> float | None: ...


def tracing_enabled(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _exporters() -> list[SpanExporter]:
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
            kind = "grpc" if protocol == "grpc" else "http"
            try:
                module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{kind}.trace_exporter")
            except ImportError:
                raise ConfigError(
                    f"OTEL_TRACES_EXPORTER=otlp ({protocol}) needs the OTLP exporter: pip install 'triage[otlp]'"
                ) from None
            exporters.append(module.OTLPSpanExporter())
        elif name != "none":
            raise ConfigError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)")
    return exporters


class Tracing:
    """The gateway's tracer: its own provider (a host app's global one is left alone)."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("triage")

    @classmethod
    def from_env(cls) -> Tracing | None:
        if not tracing_enabled():
            return None
        return cls.with_exporters(_exporters())

    @classmethod
    def with_exporters(cls, exporters: list[SpanExporter], *, batch: bool = True) -> Tracing:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the provider reads the sampler's.
        service = os.environ.get("OTEL_SERVICE_NAME") or "triage"
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        return cls(provider)

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what is batched

    def record(self, routed: Routed, model: str | None, usage: Usage, status: str, endpoint: str,
               config: TriageConfig) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        now_perf, now_ns = time.perf_counter(), time.time_ns()

        def at(perf: float) -> int:  # a perf_counter reading as unix nanoseconds
            return now_ns - int((now_perf - perf) * 1e9)

        start = at(routed.received)
        plan = routed.plan
        decision = routed.decision
        requested = plan.primary if plan is not None and plan.reason == "forced" else config.router_name
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": requested,
            "triage.request_id": routed.request_id,
            "triage.endpoint": endpoint,
            "triage.speculation": routed.speculation,
            "triage.status": status,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
        }
        if plan is not None:
            attributes["triage.reason"] = plan.reason
            if plan.category is not None:
                attributes["triage.category"] = plan.category
        if decision is not None:
            attributes["triage.confidence"] = decision.confidence
        if model is not None:
            attributes["gen_ai.response.model"] = model
            attributes["gen_ai.provider.name"] = config.models[model].provider
        if routed.first_token_at is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = routed.first_token_at - routed.received
        parent = otel_context.get_current()
        span = self.tracer.start_span(f"chat {requested}", context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes, start_time=start)
        inside = trace.set_span_in_context(span, parent)
        upstream_start = start
        if decision is not None:
            classified = start + int(decision.latency_ms * 1e6)
            child = self.tracer.start_span("classify", context=inside, kind=SpanKind.INTERNAL, start_time=start,
                                           attributes={"triage.classifier": decision.classifier,
                                                       "triage.category": decision.category,
                                                       "triage.confidence": decision.confidence})
            child.end(end_time=classified)
            upstream_start = classified
        answered = model or (plan.primary if plan is not None else None)
        if answered is not None:
            provider = config.models[answered].provider
            host = urlsplit(config.providers[provider].base_url).hostname
            upstream = self.tracer.start_span(
                f"chat {answered}", context=inside, kind=SpanKind.CLIENT, start_time=upstream_start,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": answered,
                            "gen_ai.provider.name": provider, "server.address": host or "",
                            "triage.speculation": routed.speculation},
            )
            if routed.first_token_at is not None:
                upstream.add_event("gen_ai.first_chunk", timestamp=at(routed.first_token_at))
            if status == "upstream_error":
                upstream.set_status(Status(StatusCode.ERROR))
                upstream.set_attribute("error.type", "upstream_error")
            upstream.end(end_time=now_ns)
        if status == "upstream_error":
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", "upstream_error")
        span.end(end_time=now_ns)


class TracingMiddleware:
    """Pure ASGI: a client's trace context (`traceparent`, per OTEL_PROPAGATORS) becomes the parent of the spans
    made for its request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import context as otel_context
        from opentelemetry.propagate import extract

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        token = otel_context.attach(extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
