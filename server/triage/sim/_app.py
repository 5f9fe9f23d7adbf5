"""A simulated OpenAI-compatible provider: `POST /v1/chat/completions` with configurable time to first token,
tokens per second, error statuses and mid-stream faults, plus `/sim/*` endpoints through which tests observe and
reconfigure it. Tests and benchmarks run it on loopback; users point a routing config at it to load-test for free.

It is the baseline of the overhead benchmark, so the hot path builds SSE bytes by hand around precomputed
per-request prefixes and streams them through a plain `StreamingResponse`.

    triage sim --port 9000 --ttft-ms 20 --tokens-per-s 200 [--config sim.yaml]
"""

from __future__ import annotations

import asyncio
import json
import logging

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from triage.sim._answer import (
    SSE_HEADERS,
    ChunkEncoder,
    ClosingStreamingResponse,
    HideStreamCuts,
    complete_answer,
    stream_answer,
)
from triage.sim._config import SimBehaviour, SimConfig
from triage.sim._content import BadRequest, plan_answer, prompt_tokens
from triage.sim._state import SimState

__all__ = ["create_sim_app"]


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def _error(status: int, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> Response:
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": error_type, "param": param, "code": f"sim_{status}"}}
    return JSONResponse(body, status_code=status, headers=headers)


async def chat_completions(request: Request) -> Response:
    start = asyncio.get_running_loop().time()
    state: SimState = request.app.state.sim
    state.totals.requests += 1
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(400, "the body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    model, messages, stream = body.get("model"), body.get("messages"), body.get("stream", False)
    if not isinstance(model, str) or not model:
        return _error(400, "`model` must be a non-empty string", param="model")
    state.begin(model, body)
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        state.end(model, "errors")
        return _error(400, "`messages` must be a non-empty list of objects", param="messages")
    if not isinstance(stream, bool) and stream is not None:
        state.end(model, "errors")
        return _error(400, "`stream` must be a boolean", param="stream")
    behaviour = state.behaviour(model)
    status = state.should_fail(model, behaviour)
    if status is not None:
        state.end(model, "errors")
        retry_after = behaviour.retry_after
        headers = None if retry_after is None else {"retry-after": f"{retry_after:g}"}
        return _error(status, f"simulated {status} for model {model!r}", headers=headers)
    try:
        answer = plan_answer(
            body,
            completion_tokens=behaviour.completion_tokens,
            reply=behaviour.reply,
            tool_arguments=behaviour.tool_arguments,
            config_seed=state.config.seed,
        )
    except BadRequest as exc:
        state.end(model, "errors")
        return _error(400, str(exc), param=exc.param)
    top = body.get("top_logprobs") if isinstance(body.get("top_logprobs"), int) else 0
    options = body.get("stream_options")
    include_usage = bool(stream) and isinstance(options, dict) and options.get("include_usage") is True
    enc = ChunkEncoder(model, include_usage, top if body.get("logprobs") is True else None, behaviour.logprob)
    n_prompt, n_completion = prompt_tokens(messages), len(answer.pieces)
    usage = {"prompt_tokens": n_prompt, "completion_tokens": n_completion, "total_tokens": n_prompt + n_completion}
    if not stream:
        return await complete_answer(state, model, behaviour, answer, enc, usage, start)
    events = stream_answer(state, model, behaviour, answer, enc, usage if include_usage else None, start)
    return ClosingStreamingResponse(events, headers=SSE_HEADERS, media_type="text/event-stream")


async def list_models(request: Request) -> Response:
    state: SimState = request.app.state.sim
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "triage-sim"} for m in state.behaviours]
    return JSONResponse({"object": "list", "data": data})


async def get_stats(request: Request) -> Response:
    return JSONResponse(request.app.state.sim.stats())


async def reset(request: Request) -> Response:
    # `?behaviours=true` also restores the behaviours of the start-up config (tests reset between cases).
    request.app.state.sim.reset(behaviours=request.query_params.get("behaviours") in ("1", "true"))
    return Response(status_code=204)


async def put_model(request: Request) -> Response:
    try:
        behaviour = SimBehaviour.model_validate_json(await request.body())
    except ValidationError as exc:
        return _error(400, f"invalid behaviour: {exc.errors(include_url=False, include_input=False)}")
    request.app.state.sim.set_behaviour(request.path_params["model_id"], behaviour)
    return JSONResponse(behaviour.model_dump())


async def delete_model(request: Request) -> Response:
    state: SimState = request.app.state.sim
    if state.behaviours.pop(request.path_params["model_id"], None) is None:
        return _error(404, "no behaviour is set for this model")
    state.seen.pop(request.path_params["model_id"], None)
    return Response(status_code=204)


async def last_request(request: Request) -> Response:
    body = request.app.state.sim.last_request.get(request.path_params["model_id"])
    return _error(404, "no request for this model yet") if body is None else JSONResponse(body)


def create_sim_app(config: SimConfig | None = None) -> Starlette:
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, HideStreamCuts) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(HideStreamCuts())
    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/sim/stats", get_stats, methods=["GET"]),
        Route("/sim/reset", reset, methods=["POST"]),
        Route("/sim/models/{model_id:path}", put_model, methods=["PUT"]),
        Route("/sim/models/{model_id:path}", delete_model, methods=["DELETE"]),
        Route("/sim/requests/{model_id:path}/last", last_request, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.sim = SimState(config or SimConfig())
    return app


