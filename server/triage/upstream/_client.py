"""Upstream model calls: one pooled aiohttp session per provider, explicit timeouts, fallback along a route's model
chain before the first token, and a cooldown for models that keep failing.

Answers are posted on the session directly and their bytes decoded by Triage's own SSE decoder: the request path
is the gateway's hot path, and going through `openai.AsyncOpenAI` cost ~1.3 ms per request (building the SDK's
request options and httpx2 objects, bench/overhead.py profile) on a ~1.2 ms loopback round trip. The provider's
`openai.AsyncOpenAI` client (for the LLM classifier, through instructor) rides on the same session, so each
provider has one connection pool and one connection limit.

A `ModelStream` is returned only once the upstream has produced its first token (the first chunk carrying content
or a tool call): every failure before that point is invisible to the client and moves on to the next model.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import httpx2
import openai

# The SDK's aiohttp transport, vendored in openai-python (pinned <4): the only way to hand the SDK a session of ours.
from openai._vendor.httpx_aiohttp import AiohttpTransport

from triage._config import TriageConfig
from triage._exceptions import (
    AllModelsFailed,
    InvalidRequest,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from triage._json import dumps, loads
from triage.upstream._errors import error_message, mapped_errors, redact
from triage.upstream._health import ModelHealth
from triage.upstream._retry import parse_retry_after, retry_delay, should_retry
from triage.upstream._stream import Chunk, ChunkBatches, ModelStream

__all__ = ["Upstreams"]

T = TypeVar("T")


logger = logging.getLogger("triage.upstream")

# Fields Triage sets itself on the upstream request; every other field of the client's body passes through.
_OWN_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})
# Upstream statuses that say the request itself is wrong: another model would refuse it as well.
_CLIENT_FAULT = frozenset({400, 413, 422})
# How much of an error answer's body Triage reads for its message.
_ERROR_BODY_LIMIT = 64 * 1024


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~140 ms of blocking CPU: do it once per process, not once per provider client.
    return httpx2.create_ssl_context()


class Upstreams:
    """The pooled provider clients and the per-model health that fallback consults."""

    def __init__(self, config: TriageConfig) -> None:
        self._config = config
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        # Consecutive failures, cooldowns and recent time to first token, per model: what fallback consults.
        self.health = ModelHealth(config)
        self._secrets = [
            key.get_secret_value() for p in config.providers.values() if (key := p.api_key()) is not None
        ]
        # Per provider: the chat-completions URL and the headers of every request (the key among them).
        self._urls: dict[str, str] = {}
        self._headers: dict[str, dict[str, str]] = {}

    async def start(self) -> None:
        for name, provider in self._config.providers.items():
            key = provider.api_key()
            self._urls[name] = provider.base_url.rstrip("/") + "/chat/completions"
            self._headers[name] = {"content-type": "application/json"}
            if key is not None:
                self._headers[name]["authorization"] = f"Bearer {key.get_secret_value()}"
            t = provider.timeout
            timeout = openai.Timeout(connect=t.connect, read=t.idle, write=t.connect, pool=t.first_token)
            self._clients[name] = openai.AsyncOpenAI(
                base_url=provider.base_url,
                # Local servers need no key, but the client insists on one.
                api_key=key.get_secret_value() if key is not None else "not-needed",
                max_retries=0,  # fallback and retries are Triage's: the chain, not the same model again
                timeout=timeout,
                http_client=openai.DefaultAioHttpClient(
                    # TLS is the session's connector's; verify=False only spares the shim a CA bundle it never uses.
                    transport=AiohttpTransport(client=functools.partial(self._session, name), verify=False),
                    timeout=timeout,
                ),
            )
        for client in self._clients.values():
            # openai imports its resources lazily on first use (~0.5 s of blocking imports): pay that at start.
            _ = client.chat.completions

    def _session(self, provider: str) -> aiohttp.ClientSession:
        """The provider's pooled session, made on first use (an app that never calls a model opens none)."""
        session = self._sessions.get(provider)
        if session is None:
            config = self._config.providers[provider]
            t = config.timeout
            # Plain-HTTP providers (local servers, the simulator) need no TLS context at all.
            verify: ssl.SSLContext | bool = _tls_context() if config.base_url.startswith("https:") else False
            session = self._sessions[provider] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=config.max_connections, ssl=verify, keepalive_timeout=config.keepalive
                ),
                # No total: an answer streams for as long as `total` allows, which ModelStream enforces.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=t.connect, sock_read=t.idle),
            )
        return session

    @property
    def clients(self) -> Mapping[str, openai.AsyncOpenAI]:
        """The pooled provider clients by provider name (after `start`): the LLM classifier shares them."""
        return self._clients

    async def aclose(self) -> None:
        sessions, self._sessions, self._clients = self._sessions, {}, {}
        for session in sessions.values():
            await session.close()

    # -- requests -------------------------------------------------------------------------------------------

    def upstream_body(self, model: str, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        """The body Triage posts to `model`'s provider: Triage's own fields set, every other field passed through."""
        model_cfg = self._config.models[model]
        upstream = {k: v for k, v in body.items() if k not in _OWN_FIELDS}
        response_format = upstream.get("response_format")
        provider = self._config.providers[model_cfg.provider]
        if (
            provider.json_schema == "json_object"
            and isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
        ):
            schema = (response_format.get("json_schema") or {}).get("schema", {})
            upstream["response_format"] = {"type": "json_object", "schema": schema}
        upstream["model"] = model_cfg.upstream_id
        upstream["messages"] = body["messages"]
        if stream:
            upstream["stream"] = True
            # Always ask for usage: accounting needs it. The client sees the usage chunk only if it asked.
            upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return upstream

    def _status_error(self, model: str, status: int, headers: Mapping[str, str], message: str) -> UpstreamStatusError:
        """A provider's error answer in Triage's tree: retryable or not, its `retry-after`, never a key."""
        if status in (401, 403):
            detail = "the provider rejected Triage's credentials"  # its message may echo part of the key
        else:
            detail = redact(message[:300], self._secrets)
        error = UpstreamStatusError(
            f"model {model!r} answered {status}: {detail}", status=status, model=model,
            retry_after=parse_retry_after(headers),
        )
        error.retryable = status not in _CLIENT_FAULT and (status in (401, 403, 404) or should_retry(status, headers))
        return error

    async def _post(self, model: str, body: dict[str, Any], *, stream: bool) -> aiohttp.ClientResponse:
        """Post `body` to `model`'s provider and return its successful response (headers read, body not yet)."""
        provider = self._config.models[model].provider
        session, url = self._session(provider), self._urls[provider]
        data = dumps(self.upstream_body(model, body, stream=stream))
        try:
            response = await session.post(url, data=data, headers=self._headers[provider])
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError):
                raise
            # A pooled connection the provider closed while idle, its close not yet seen (a long loop stall, issue 8):
            # nothing was answered on it, so the request goes once more, on another connection (RFC 9112 9.3.1).
            logger.debug("model %s: pooled connection closed under the request (%s); sending it again", model, exc)
            response = await session.post(url, data=data, headers=self._headers[provider])
        if response.status < 400:
            return response
        try:
            text = (await response.content.read(_ERROR_BODY_LIMIT)).decode(errors="replace")
        finally:
            response.close()
        raise self._status_error(model, response.status, response.headers, error_message(text))

    async def open_stream(self, model: str, body: dict[str, Any]) -> ModelStream:
        """Start a streamed answer from `model` and wait for its first token (within the first-token timeout)."""
        model_cfg = self._config.models[model]
        timeouts = self._config.providers[model_cfg.provider].timeout
        started = time.perf_counter()
        deadline = time.monotonic() + timeouts.total
        response: aiohttp.ClientResponse | None = None
        head: list[Chunk] = []
        try:
            with mapped_errors(model):
                try:
                    async with asyncio.timeout(timeouts.first_token):
                        response = await self._post(model, body, stream=True)
                        batches = ChunkBatches(response, model, deadline)
                        async for batch in batches:
                            assert isinstance(batch, list)  # no relay yet: chunks only
                            head += batch
                            if batches.token_seen:  # (the chunks after it in the same read wait, undecoded)
                                break
                        # Ending without a token: an empty answer is still an answer.
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"model {model!r} sent no token within {timeouts.first_token:g}s", model=model
                    ) from None
        except BaseException:
            if response is not None:
                response.close()
            raise
        assert response is not None
        self.health.record_ttft(model, (time.perf_counter() - started) * 1000)
        return ModelStream(model, response, batches, head)

    async def complete(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed answer from `model`, as the provider's JSON with `model` set to Triage's name for it."""
        model_cfg = self._config.models[model]
        timeouts = self._config.providers[model_cfg.provider].timeout
        with mapped_errors(model):
            try:
                async with asyncio.timeout(timeouts.total):
                    response = await self._post(model, body, stream=False)
                    async with response:
                        data = loads(await response.read())
            except TimeoutError:
                message = f"model {model!r} gave no answer within {timeouts.total:g}s"
                raise UpstreamTimeout(message, model=model) from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            message = f"model {model!r} answered with something that is not a chat completion"
            raise UpstreamProtocolError(message, model=model)
        data["model"] = model
        return data

    async def stream_chain(self, models: Sequence[str], body: dict[str, Any]) -> ModelStream:
        return await self._along_chain(models, lambda m: self.open_stream(m, body))

    async def complete_chain(self, models: Sequence[str], body: dict[str, Any]) -> dict[str, Any]:
        return await self._along_chain(models, lambda m: self.complete(m, body))

    async def _along_chain(self, models: Sequence[str], attempt: Callable[[str], Awaitable[T]]) -> T:
        """Try each model in order, skipping cooling ones (unless all are); the last model gets one delayed retry
        when it said, within `server.max_retry_after`, when to come back."""
        now = time.monotonic()
        candidates = [m for m in models if not self.health.is_cooling(m, now)] or list(models)
        errors: list[UpstreamError] = []
        for model in candidates:
            try:
                result = await attempt(model)
            except UpstreamStatusError as exc:
                if not exc.retryable:
                    raise InvalidRequest(exc.message, code=exc.code) from exc
                errors.append(exc)
            except UpstreamError as exc:
                errors.append(exc)
            else:
                self.health.record_success(model)
                return result
            failure = type(errors[-1]).__name__
            logger.info("model %s failed before its first token (%s); trying the next", model, failure)
            self.health.record_failure(model, errors[-1])
        last = errors[-1]
        if isinstance(last, UpstreamStatusError) and last.retry_after is not None:
            cap = self._config.server.max_retry_after
            if last.retry_after <= cap:
                await asyncio.sleep(retry_delay(1, last.retry_after, cap=cap))
                with contextlib.suppress(UpstreamError):
                    result = await attempt(candidates[-1])
                    self.health.record_success(candidates[-1])
                    return result
        tried = ", ".join(repr(m) for m in candidates)
        raise AllModelsFailed(f"every model of the route failed ({tried}); last: {last.message}", last=last) from last
