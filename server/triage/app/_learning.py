"""The learning loop's endpoints: human corrections, usage statistics, and reloading the classifier's head.

    POST /v1/feedback       reviewer   {request_id, category, note?} -> the stored correction
    GET  /v1/stats          reviewer   ?bucket=hour|day&since=...&until=... -> per-bucket aggregates and totals
    POST /v1/admin/reload   admin      load the current head version now (servers also poll for it)
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from triage._config import TriageConfig
from triage._exceptions import InvalidRequest, NotFound
from triage.app._auth import KeyRing
from triage.app._http import read_json
from triage.app._schemas import parse_body
from triage.learn import HeadReloader
from triage.learn._store import BUCKET_SECONDS, Bucket, Store

__all__ = ["FeedbackRequest", "LearningGateway", "learning_routes", "parse_time"]

# The default window of /v1/stats when `since` is not given: a day of hours, or a month of days.
_DEFAULT_SPAN: dict[Bucket, float] = {"hour": 86400.0, "day": 30 * 86400.0}
_MAX_NOTE = 4000


class LearningGateway(Protocol):
    """What these endpoints need of the Gateway."""

    config: TriageConfig
    keys: KeyRing
    store: Store | None  # None: this server keeps no records (an embedding host chose so)
    heads: HeadReloader | None  # None: the classifier has no head to reload (kind: rules)

    async def ensure_started(self) -> None: ...

    def remember(self, request_id: str, text: str | None, category: str) -> None: ...


class FeedbackRequest(BaseModel):
    # Unlike chat requests, nothing unknown passes: a misspelt field here would silently lose a reviewer's work.
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    category: str = Field(min_length=1, max_length=64)
    note: str | None = Field(None, max_length=_MAX_NOTE)


def _gateway(request: Request) -> LearningGateway:
    gateway: LearningGateway = request.app.state.gateway
    return gateway


def _store(gateway: LearningGateway) -> Store:
    if gateway.store is None:
        raise NotFound("this server keeps no decision records (no store)", code="no_store")
    return gateway.store


async def feedback(request: Request) -> Response:
    gateway = _gateway(request)
    caller = gateway.keys.authenticate(request)
    caller.require("reviewer")
    await gateway.ensure_started()
    body = parse_body(FeedbackRequest, await read_json(request, limit=64 * 1024))
    categories = gateway.config.categories
    if body.category not in categories:
        raise InvalidRequest(
            f"unknown category {body.category!r}; expected one of {', '.join(categories)}",
            param="category", code="unknown_category",
        )
    store = _store(gateway)
    correction = await store.add_correction(body.request_id, body.category, note=body.note, key_id=caller.key_id)
    # The correction acts at once on requests that nearly repeat this one (the classifier's memory), before a retrain.
    decision = await store.get_decision(body.request_id)
    gateway.remember(body.request_id, decision.text if decision is not None else None, body.category)
    return JSONResponse(correction.to_dict())


def parse_time(value: str, *, param: str) -> float:
    """Unix seconds, or an ISO 8601 date or date-time (UTC unless it names an offset)."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(
                f"{param}: {value!r} is neither unix seconds nor an ISO 8601 date-time", param=param,
                code="invalid_value",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(seconds):
        raise InvalidRequest(f"{param}: must be a finite number of seconds", param=param, code="invalid_value")
    return seconds


async def stats(request: Request) -> Response:
    gateway = _gateway(request)
    gateway.keys.authenticate(request).require("reviewer")
    await gateway.ensure_started()
    query = request.query_params
    bucket = query.get("bucket", "hour")
    if bucket not in BUCKET_SECONDS:
        raise InvalidRequest(f"bucket: {bucket!r} is not one of hour, day", param="bucket", code="invalid_value")
    size: Bucket = "hour" if bucket == "hour" else "day"
    until = parse_time(query["until"], param="until") if "until" in query else time.time()
    since = parse_time(query["since"], param="since") if "since" in query else until - _DEFAULT_SPAN[size]
    if since >= until:
        raise InvalidRequest("since: must be earlier than until", param="since", code="invalid_value")
    # Include what is still queued: a reviewer looking right after a burst expects to see it.
    store = _store(gateway)
    await store.flush()
    report = await store.stats(bucket=size, since=since, until=until)
    return JSONResponse({**report.to_dict(), "dropped": store.dropped})


async def reload(request: Request) -> Response:
    gateway = _gateway(request)
    gateway.keys.authenticate(request).require("admin")
    await gateway.ensure_started()
    if gateway.heads is None:
        raise InvalidRequest("this server's classifier has no head to reload", code="no_head")
    result = await gateway.heads.reload(force=True)
    return JSONResponse(result.to_dict())


def learning_routes() -> list[BaseRoute]:
    return [
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/v1/stats", stats, methods=["GET"]),
        Route("/v1/admin/reload", reload, methods=["POST"]),
    ]
