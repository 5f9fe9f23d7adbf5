"""Triage's one exception tree. Everything raised on purpose inside Triage is a `TriageError`; the HTTP boundary
maps each class to a status and OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`).

    TriageError
    ├── ConfigError                 invalid configuration, found at start-up
    ├── RequestError                a client's request cannot be served as sent (4xx)
    │   ├── InvalidRequest          400: malformed JSON, wrong types, unknown category
    │   ├── AuthenticationError     401: missing or unknown API key
    │   ├── PermissionDenied        403: a key without the role an endpoint needs
    │   ├── NotFound                404: unknown model, route or request id
    │   ├── PayloadTooLarge         413: body over the configured limit
    │   ├── UnprocessableRequest    422: a structured-output request whose schema is invalid
    │   ├── RateLimited             429: the key's token bucket is empty
    │   └── Overloaded              503: too many concurrent streams
    ├── UpstreamError               a model provider failed
    │   ├── UpstreamConnectError    could not connect to the provider
    │   ├── UpstreamTimeout         connect, first-token, idle or total timeout
    │   ├── UpstreamStatusError     the provider answered with an error status
    │   ├── UpstreamProtocolError   a malformed chunk, or the connection cut mid-stream
    │   └── AllModelsFailed         502/504: every model of the route's chain failed before its first token
    ├── ShuttingDown                503: the server is shutting down; an in-flight stream ended after the grace
    ├── StoreUnavailable            503: the database is unreachable (decisions are still buffered and retried)
    ├── ClassifierError             a classifier failed or timed out (the policy falls back)
    └── StructuredOutputError       the structured answer is not valid JSON or not valid against its schema
"""

from __future__ import annotations

__all__ = [
    "AllModelsFailed",
    "AuthenticationError",
    "ClassifierError",
    "ConfigError",
    "InvalidRequest",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RequestError",
    "ShuttingDown",
    "StoreUnavailable",
    "StructuredOutputError",
    "TriageError",
    "UnprocessableRequest",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamStatusError",
    "UpstreamTimeout",
]


class TriageError(Exception):
    """Base of every error Triage raises on purpose."""

    status_code: int = 500
    error_type: str = "server_error"
    retryable: bool = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_dict(self) -> dict[str, object]:
        """OpenAI's error shape."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


class ConfigError(TriageError):
    """Raised when the configuration is invalid; the message names the field."""


class RequestError(TriageError):
    """Raised when a client's request cannot be served as sent."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidRequest(RequestError):
    """Raised when the body is not valid JSON or not a valid request."""


class AuthenticationError(RequestError):
    """Raised when the API key is missing or unknown."""

    status_code = 401
    error_type = "authentication_error"


class PermissionDenied(RequestError):
    """Raised when a valid key lacks the role the endpoint needs."""

    status_code = 403
    error_type = "permission_error"


class NotFound(RequestError):
    """Raised when a model, route or request id is unknown."""

    status_code = 404
    error_type = "not_found_error"


class PayloadTooLarge(RequestError):
    """Raised when the request body exceeds `server.max_body_bytes`."""

    status_code = 413


class UnprocessableRequest(RequestError):
    """Raised when a structured-output request carries an invalid JSON schema."""

    status_code = 422


class RateLimited(RequestError):
    """Raised when a key has spent its rate budget; `retry_after` is in seconds."""

    status_code = 429
    error_type = "rate_limit_error"
    retryable = True

    def __init__(self, message: str, *, retry_after: float, code: str | None = "rate_limit_exceeded") -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Overloaded(RequestError):
    """Raised when the concurrent-stream cap (per key or in total) is reached."""

    status_code = 503
    error_type = "overloaded_error"
    retryable = True

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, code="overloaded")
        self.retry_after = retry_after


class UpstreamError(TriageError):
    """Raised when a model provider fails. `model` is the configured model name, never a URL or key."""

    status_code = 502
    error_type = "upstream_error"
    retryable = True

    def __init__(self, message: str, *, model: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.model = model


class UpstreamConnectError(UpstreamError):
    """Raised when the provider cannot be reached."""


class UpstreamTimeout(UpstreamError):
    """Raised when a connect, first-token, idle or total timeout expires."""

    status_code = 504
    error_type = "timeout_error"


class UpstreamStatusError(UpstreamError):
    """Raised when the provider answers with an error status; `retry_after` comes from its header."""

    def __init__(
        self, message: str, *, status: int, model: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, model=model, code=f"upstream_{status}")
        self.status = status
        self.retry_after = retry_after
        # A 4xx other than 408/409/429 is the request's fault: another model would refuse it too.
        self.retryable = status in (408, 409, 429) or status >= 500


class UpstreamProtocolError(UpstreamError):
    """Raised when a chunk is malformed or the connection is cut before the stream's end."""


class AllModelsFailed(UpstreamError):
    """Raised when every model of a route's chain failed before its first token."""

    def __init__(self, message: str, *, last: UpstreamError | None = None) -> None:
        super().__init__(message, code="all_models_failed")
        self.last = last
        if isinstance(last, UpstreamTimeout):
            self.status_code = 504
            self.error_type = "timeout_error"


class ShuttingDown(TriageError):
    """Raised into a stream still running when the shutdown grace period ends: retry on another instance."""

    status_code = 503
    error_type = "server_shutting_down"
    retryable = True


class StoreUnavailable(TriageError):
    """Raised when the store's database cannot be reached in time (a correction, statistics, an export)."""

    status_code = 503
    error_type = "store_unavailable"
    retryable = True

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, code="store_unavailable")
        self.retry_after = retry_after


class ClassifierError(TriageError):
    """Raised when a classifier fails or times out; the policy then falls back to the strongest model."""


class StructuredOutputError(TriageError):
    """Raised when a structured answer is not valid JSON, or a field fails its schema; `path` is a JSON pointer."""

    error_type = "structured_output_error"

    def __init__(self, message: str, *, path: str = "", offset: int | None = None) -> None:
        super().__init__(message, param=path or None, code="structured_output_invalid")
        self.path = path
        self.offset = offset
