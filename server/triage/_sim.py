"""A simulated OpenAI-compatible provider: `POST /v1/chat/completions` with configurable time to first token,
tokens per second, error statuses and mid-stream faults, plus `/sim/*` endpoints through which tests observe and
reconfigure it. Tests and benchmarks run it on loopback; users point a routing config at it to load-test for free.

It is the baseline of the overhead benchmark, so the hot path builds SSE bytes by hand around precomputed
per-request prefixes and streams them through a plain `StreamingResponse`.

    triage sim --port 9000 --ttft-ms 20 --tokens-per-s 200 [--config sim.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from triage._exceptions import ConfigError
from triage._sim_content import VOCABULARY, Answer, BadRequest, plan_answer, prompt_tokens
from triage._types import Receive, Scope, Send

__all__ = ["SimBehaviour", "SimConfig", "SimState", "configure_sim", "create_sim_app", "load_sim_config", "run_sim"]


class SimBehaviour(BaseModel):
    """How the simulator answers one model. Fault positions count streamed payload chunks (content or tool-call
    argument pieces); a position past the end applies just before the final chunk."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = Field(default=20.0, ge=0)
    tokens_per_s: float = Field(default=200.0, ge=0, description="0: as fast as possible")
    completion_tokens: int = Field(default=40, ge=0, description="length of generated text answers")
    status: int | None = Field(
        default=None, ge=400, le=599, description="answer with this error status, before any stream"
    )
    retry_after: float | None = Field(default=None, ge=0, description="`retry-after` header sent with `status`")
    fail_first: int = Field(default=0, ge=0, description="only the first N requests fail (with `status`, else 500)")
    cut_after: int | None = Field(default=None, ge=0, description="drop the connection after N chunks")
    stall_after: int | None = Field(default=None, ge=0, description="pause `stall_s` after N chunks, then go on")
    stall_s: float = Field(default=30.0, ge=0)
    malformed_after: int | None = Field(
        default=None, ge=0, description="send `data: {not json` after N chunks, then go on"
    )
    linger_s: float = Field(default=0.0, ge=0, description="keep the body open this long after `[DONE]`")
    reply: str | None = None
    tool_arguments: dict[str, Any] | None = None
    logprob: float = Field(default=-0.05, le=0, description="logprob of each content token when `logprobs` is asked")


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: SimBehaviour = SimBehaviour()
    models: dict[str, SimBehaviour] = {}
    seed: int = 0


@dataclass(slots=True)
class _Counts:
    requests: int = 0
    completed: int = 0
    cancelled: int = 0
    errors: int = 0


class SimState:
    """Behaviours and counters of one simulator app (`app.state.sim`). Touched only from the app's event loop."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.behaviours: dict[str, SimBehaviour] = dict(config.models)
        # `active` is a gauge of live responses, so a reset leaves it alone; `epoch` tells a response that outlived
        # a reset not to count its outcome in the fresh counters.
        self.active = 0
        self.epoch = 0
        self.reset()

    def reset(self, *, behaviours: bool = False) -> None:
        if behaviours:
            self.behaviours = dict(self.config.models)
        self.epoch += 1
        self.totals = _Counts()
        self.by_model: dict[str, _Counts] = {}
        self.last_request: dict[str, dict[str, Any]] = {}
        # Requests seen per model since its behaviour was set: `fail_first` counts against this.
        self.seen: dict[str, int] = {}

    def behaviour(self, model: str) -> SimBehaviour:
        return self.behaviours.get(model, self.config.default)

    def set_behaviour(self, model: str, behaviour: SimBehaviour) -> None:
        self.behaviours[model] = behaviour
        self.seen.pop(model, None)

    def begin(self, model: str, body: dict[str, Any]) -> None:
        self.by_model.setdefault(model, _Counts()).requests += 1
        self.last_request[model] = body
        self.seen[model] = self.seen.get(model, 0) + 1

    def end(self, model: str, outcome: str, epoch: int | None = None) -> None:
        """`outcome`: "completed", "cancelled" (the client went away) or "errors"."""
        if epoch is not None and epoch != self.epoch:
            return
        for counts in (self.totals, self.by_model.setdefault(model, _Counts())):
            setattr(counts, outcome, getattr(counts, outcome) + 1)

    def should_fail(self, model: str, behaviour: SimBehaviour) -> int | None:
        if behaviour.fail_first:
            return (behaviour.status or 500) if self.seen.get(model, 0) <= behaviour.fail_first else None
        return behaviour.status

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.totals.requests,
            "active": self.active,
            "completed": self.totals.completed,
            "cancelled": self.totals.cancelled,
            "errors": self.totals.errors,
            "by_model": {model: asdict(counts) for model, counts in self.by_model.items()},
        }


class _StreamCut(Exception):
    """Raised inside a response body on purpose: uvicorn then closes the connection mid-response."""


class _HideStreamCuts(logging.Filter):
    # uvicorn logs every exception escaping the app with its traceback; a simulated cut is not a bug.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _StreamCut))


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}
_DONE = b"data: [DONE]\n\n"
_MALFORMED = b"data: {not json\n\n"
_ids = itertools.count(1)


def _error(status: int, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> Response:
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": error_type, "param": param, "code": f"sim_{status}"}}
    return JSONResponse(body, status_code=status, headers=headers)


@lru_cache(maxsize=8192)
def _json_str(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


class _Encoder:
    """OpenAI's `chat.completion.chunk` events for one response, around a precomputed prefix."""

    def __init__(self, model: str, usage: bool, top_logprobs: int | None, logprob: float) -> None:
        self.completion_id = f"chatcmpl-sim{next(_ids)}"
        self.created = int(time.time())
        self.model = model
        self.top = b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s' % (
            self.completion_id.encode(),
            self.created,
            _json_str(model),
        )
        self.head = self.top + b',"choices":[{"index":0,"delta":'
        self.tail = b',"finish_reason":null}]' + (b',"usage":null' if usage else b"") + b"}\n\n"
        self.usage_tail = b',"usage":null}\n\n' if usage else b"}\n\n"
        self.top_logprobs = top_logprobs  # None: the request did not ask for logprobs
        self.logprob = logprob

    def role(self, answer: Answer) -> bytes:
        if answer.kind == "tool_call":
            call: dict[str, Any] = {"index": 0, "id": answer.tool_call_id, "type": "function"}
            call["function"] = {"name": answer.tool_name, "arguments": ""}
            delta = json.dumps({"role": "assistant", "content": None, "tool_calls": [call]}).encode()
            return self.head + delta + b',"logprobs":null' + self.tail
        return self.head + b'{"role":"assistant","content":""},"logprobs":null' + self.tail

    def piece(self, answer: Answer, index: int, text: str) -> bytes:
        if answer.kind == "tool_call":
            delta = b'{"tool_calls":[{"index":0,"function":{"arguments":' + _json_str(text) + b"}}]}"
            return self.head + delta + b',"logprobs":null' + self.tail
        logprobs = b"null" if self.top_logprobs is None else json.dumps(self.logprobs([text], index)).encode()
        return self.head + b'{"content":' + _json_str(text) + b'},"logprobs":' + logprobs + self.tail

    def finish(self, reason: str, usage: dict[str, int] | None) -> bytes:
        end = self.head + b'{},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]' + self.usage_tail
        if usage is not None:
            end += self.top + b',"choices":[],"usage":' + json.dumps(usage).encode() + b"}\n\n"
        return end + _DONE

    def logprobs(self, tokens: list[str], first_index: int = 0) -> dict[str, Any]:
        content = []
        for i, token in enumerate(tokens, first_index):
            # Alternatives are fixed words with strictly lower logprobs, so the chosen token is the most likely.
            alternatives = [
                (" " + VOCABULARY[(i * 31 + j * 17) % len(VOCABULARY)], self.logprob - j)
                for j in range(1, self.top_logprobs or 0)
            ]
            top = [
                {"token": t, "logprob": lp, "bytes": list(t.encode())}
                for t, lp in [(token, self.logprob), *alternatives]
            ]
            entry = {"token": token, "logprob": self.logprob, "bytes": list(token.encode())}
            content.append({**entry, "top_logprobs": top if self.top_logprobs else []})
        return {"content": content, "refusal": None}


def _fault_at(position: int | None, total: int) -> int | None:
    return None if position is None else min(position, total)


async def _stream(
    state: SimState,
    model: str,
    b: SimBehaviour,
    answer: Answer,
    enc: _Encoder,
    usage: dict[str, int] | None,
    start: float,
) -> AsyncGenerator[bytes, None]:
    loop = asyncio.get_running_loop()
    pieces = answer.pieces
    n = len(pieces)
    interval = 1.0 / b.tokens_per_s if b.tokens_per_s > 0 else 0.0
    stall_at, malformed_at, cut_at = (_fault_at(x, n) for x in (b.stall_after, b.malformed_after, b.cut_after))
    state.active += 1
    epoch = state.epoch
    outcome = "errors"
    try:
        due = start + b.ttft_ms / 1000
        first = enc.role(answer)
        for i in range(n + 1):
            if i == stall_at:
                await asyncio.sleep(b.stall_s)
                due = max(due, loop.time())
            if i == malformed_at:
                yield _MALFORMED
            if i == cut_at:
                raise _StreamCut(f"simulated cut after {i} chunks")
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == n:
                break
            chunk = enc.piece(answer, i, pieces[i])
            yield first + chunk if i == 0 else chunk
            due += interval
        yield (first if n == 0 else b"") + enc.finish(answer.finish_reason, usage)
        if b.linger_s:
            await asyncio.sleep(b.linger_s)
        outcome = "completed"
    except (asyncio.CancelledError, GeneratorExit):
        outcome = "cancelled"
        raise
    finally:
        state.active -= 1
        state.end(model, outcome, epoch)


class _EventStream(StreamingResponse):
    def __init__(self, body: AsyncGenerator[bytes, None], headers: dict[str, str], media_type: str) -> None:
        super().__init__(body, headers=headers, media_type=media_type)
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A generator cancelled while suspended at `yield` (during `send`) is closed now, not at GC, so its
            # `finally` counts the cancellation at once.
            await self._body.aclose()


def _message(answer: Answer) -> dict[str, Any]:
    if answer.kind == "tool_call":
        function = {"name": answer.tool_name, "arguments": "".join(answer.pieces)}
        call = {"id": answer.tool_call_id, "type": "function", "function": function}
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}
    return {"role": "assistant", "content": "".join(answer.pieces), "refusal": None}


async def _complete(
    state: SimState, model: str, b: SimBehaviour, answer: Answer, enc: _Encoder, usage: dict[str, int], start: float
) -> Response:
    state.active += 1
    epoch = state.epoch
    try:
        n = len(answer.pieces)
        delay = b.ttft_ms / 1000 + (n / b.tokens_per_s if b.tokens_per_s > 0 else 0.0)
        delay += b.stall_s if b.stall_after is not None else 0.0
        await asyncio.sleep(max(0.0, start + delay - asyncio.get_running_loop().time()))
        choice = {"index": 0, "message": _message(answer), "logprobs": None, "finish_reason": answer.finish_reason}
        if enc.top_logprobs is not None and answer.kind == "text":
            choice["logprobs"] = enc.logprobs(answer.pieces)
        completion = {"id": enc.completion_id, "object": "chat.completion", "created": enc.created, "model": model}
        body = json.dumps({**completion, "choices": [choice], "usage": usage}).encode()
        if b.malformed_after is not None:
            body = _MALFORMED[6:-2]
        if b.cut_after is not None:
            # Announce the full length, send half, drop the connection: the client sees a truncated body.
            async def truncated() -> AsyncGenerator[bytes, None]:
                yield body[: len(body) // 2]
                raise _StreamCut("simulated cut")

            state.end(model, "errors", epoch)
            headers = {"content-length": str(len(body))}
            return _EventStream(truncated(), headers=headers, media_type="application/json")
        state.end(model, "completed", epoch)
        return Response(body, media_type="application/json")
    finally:
        state.active -= 1


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
    enc = _Encoder(model, include_usage, top if body.get("logprobs") is True else None, behaviour.logprob)
    n_prompt, n_completion = prompt_tokens(messages), len(answer.pieces)
    usage = {"prompt_tokens": n_prompt, "completion_tokens": n_completion, "total_tokens": n_prompt + n_completion}
    if not stream:
        return await _complete(state, model, behaviour, answer, enc, usage, start)
    events = _stream(state, model, behaviour, answer, enc, usage if include_usage else None, start)
    return _EventStream(events, headers=_SSE_HEADERS, media_type="text/event-stream")


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
    if not any(isinstance(f, _HideStreamCuts) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_HideStreamCuts())
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


def configure_sim(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--config", type=Path, help="YAML file holding a SimConfig (default, models, seed)")
    # Flags left unset keep the config file's default behaviour.
    parser.add_argument("--ttft-ms", type=float, help="time to first token (default 20)")
    parser.add_argument("--tokens-per-s", type=float, help="stream speed, 0 = as fast as possible (default 200)")
    parser.add_argument("--completion-tokens", type=int, help="length of generated answers (default 40)")
    parser.add_argument("--seed", type=int, help="changes every generated answer (default 0)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def load_sim_config(path: Path | None, overrides: dict[str, Any], seed: int | None = None) -> SimConfig:
    try:
        raw = yaml.safe_load(path.read_text()) if path is not None else None
        config = SimConfig.model_validate(raw or {})
        default = SimBehaviour.model_validate({**config.default.model_dump(exclude_unset=True), **overrides})
        return config.model_copy(update={"default": default, "seed": config.seed if seed is None else seed})
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"{path or 'sim'}: {field}: {error['msg']}") from exc


def run_sim(args: argparse.Namespace) -> int:
    import uvicorn

    flags = {"ttft_ms": args.ttft_ms, "tokens_per_s": args.tokens_per_s, "completion_tokens": args.completion_tokens}
    config = load_sim_config(args.config, {k: v for k, v in flags.items() if v is not None}, args.seed)
    app = create_sim_app(config)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, http="httptools")
    return 0
