"""HTTP edges shared by every endpoint: reading a bounded JSON body, and errors in OpenAI's shape."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import jiter
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from triage._exceptions import InvalidRequest, NotFound, PayloadTooLarge, TriageError
from triage._types import Receive

__all__ = ["ClientGone", "DisconnectWatch", "error_response", "read_json"]

logger = logging.getLogger("triage.http")

T = TypeVar("T")


class ClientGone(Exception):
    """Raised inside a handler when the client disconnected before the response started."""


async def read_json(request: Request, *, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}", code="body_too_large")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", code="body_too_large")
    except ClientDisconnect:
        raise ClientGone() from None
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON object", code="invalid_json")
    raw = bytes(body)
    try:
        data = jiter.from_json(raw, cache_mode="keys")
    except ValueError:  # not `loads`: json must read the refused body as UTF-8 text, the only encoding accepted
        data = _strict_json(raw)
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return data


def _strict_json(body: bytes) -> Any:
    """The body as `json.loads` reads UTF-8 text, or the client's error saying where it is not (the slow path)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_encoding") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", code="invalid_json"
        ) from None


class DisconnectWatch:
    """One pending `receive()` per model request, from the moment its body has been read (the next ASGI message can
    then only be `http.disconnect`) to the end of its response. While the model is asked (`until`), a disconnect
    cancels the handler's own task, which then raises ClientGone; a streamed response takes the same listener over
    (`hand_over()`, then EventStream's `listener`), so a request costs one listener task, not one per phase.

    A context manager: on exit, a listener not handed over is cancelled."""

    def __init__(self, receive: Receive) -> None:
        self._listener: asyncio.Future[Any] | None = asyncio.ensure_future(receive())

    def __enter__(self) -> DisconnectWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._listener is not None:
            self._listener.cancel()

    def hand_over(self) -> asyncio.Future[Any]:
        """The listener, for the response to watch from now on; this watch lets go of it."""
        listener, self._listener = self._listener, None
        assert listener is not None, "handed over twice"
        return listener

    async def until(self, work: Awaitable[T]) -> T:
        """Await `work`, cancelling it if the client disconnects first (raising ClientGone)."""
        listener = self._listener
        assert listener is not None
        task = asyncio.current_task()
        assert task is not None
        watching = True
        gone = False

        def disconnected(listener: asyncio.Future[Any]) -> None:
            nonlocal gone
            # A callback already queued when the work finished must not cancel whatever the task does next.
            if watching and not listener.cancelled():
                gone = True
                task.cancel()

        listener.add_done_callback(disconnected)
        try:
            return await work
        except asyncio.CancelledError:
            # The cancellation was ours (and only ours): the work has run its cleanup on the way out.
            if gone and task.uncancel() == 0:
                raise ClientGone() from None
            raise
        finally:
            watching = False
            listener.remove_done_callback(disconnected)


def error_response(exc: TriageError) -> Response:
    headers = {}
    retry_after = getattr(exc, "retry_after", None)  # RateLimited, Overloaded, UpstreamStatusError
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


async def triage_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TriageError)
    if exc.status_code >= 500:
        logger.warning("request failed: %s: %s", type(exc).__name__, exc.message)
    return error_response(exc)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"no endpoint at {request.url.path}", code="unknown_url"))
    error = TriageError(str(exc.detail))
    error.status_code = exc.status_code
    error.error_type = "invalid_request_error"
    response = error_response(error)
    # Starlette puts a 405's `Allow` on the exception; RFC 9110 (15.5.6) requires it on the response.
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    # Never a traceback to the client: the log has it, the client gets the shape it can parse.
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(TriageError("internal error in Triage; see its log", code="internal_error"))
