"""Every 4xx of DESIGN.md, in OpenAI's error shape, never a 500 or a traceback."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from harness import gateway_config
from hypothesis import given, settings
from hypothesis import strategies as st

from triage._json import loads
from triage.app import create_app, hash_key

CLIENT_KEY = "tk-client-0123456789"
LIMITED_KEY = "tk-limited-0123456789"
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def keyed_config(**overrides: Any) -> Any:
    return gateway_config(
        "http://127.0.0.1:9",
        auth={"keys": [
            {"id": "app", "sha256": hash_key(CLIENT_KEY)},
            {"id": "limited", "sha256": hash_key(LIMITED_KEY), "rate_per_minute": 6},
        ]},
        **overrides,
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(keyed_config(server={"max_body_bytes": 4096}), ui=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://triage",
                                 headers={"authorization": f"Bearer {CLIENT_KEY}"}) as client:
        yield client
    await app.state.gateway.stop()


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"model": "auto", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "invalid_encoding"),
        (b'\xef\xbb\xbf{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}', "invalid_json"),
        ('{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'.encode("utf-16"), "invalid_encoding"),
    ],
    ids=["malformed", "empty", "not-an-object", "invalid-utf8", "utf8-bom", "utf16"],
)
async def test_unreadable_bodies_are_400(http: httpx.AsyncClient, content: bytes, code: str) -> None:
    response = await http.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})
    assert_openai_error(response, 400, code)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": []}, "messages"),
        ({"model": "auto", "messages": "hello"}, "messages"),
        ({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({**BODY, "stream": "yes"}, "stream"),
        ({**BODY, "temperature": 9}, "temperature"),
        ({**BODY, "n": 3}, "n"),
        ({**BODY, "tools": [{"type": "function"}]}, "tools.0.function"),
        ({**BODY, "response_format": {"type": "yaml"}}, "response_format.type"),
        ({"model": 42, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
async def test_invalid_requests_are_400_naming_the_parameter(
    http: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    error = assert_openai_error(await http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


async def test_unknown_model_is_404(http: httpx.AsyncClient) -> None:
    error = assert_openai_error(await http.post("/v1/chat/completions", json={**BODY, "model": "gpt-9"}), 404)
    assert error["param"] == "model" and error["code"] == "model_not_found"


async def test_unknown_path_is_404_and_wrong_method_405(http: httpx.AsyncClient) -> None:
    assert_openai_error(await http.get("/v1/nothing-here"), 404, "unknown_url")
    assert_openai_error(await http.get("/v1/chat/completions"), 405)


async def test_oversize_body_is_413(http: httpx.AsyncClient) -> None:
    huge = {**BODY, "messages": [{"role": "user", "content": "x" * 10_000}]}
    assert_openai_error(await http.post("/v1/chat/completions", json=huge), 413, "body_too_large")


async def test_oversize_body_without_content_length_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = await http.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert_openai_error(response, 413)


async def test_invalid_json_schema_is_422(http: httpx.AsyncClient) -> None:
    body = {**BODY, "response_format": {"type": "json_schema",
                                        "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}}
    assert_openai_error(await http.post("/v1/chat/completions", json=body), 422)


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "missing_api_key"), ({"authorization": "Bearer wrong-key"}, "invalid_api_key"),
     ({"authorization": "Basic abc"}, "missing_api_key")],
)
async def test_missing_or_invalid_key_is_401(http: httpx.AsyncClient, headers: dict[str, str], code: str) -> None:
    http.headers.pop("authorization")
    error = assert_openai_error(await http.post("/v1/chat/completions", json=BODY, headers=headers), 401, code)
    assert error["type"] == "authentication_error"
    assert_openai_error(await http.get("/v1/models", headers=headers), 401)


async def test_x_api_key_header_is_accepted(http: httpx.AsyncClient) -> None:
    http.headers.pop("authorization")
    assert (await http.get("/v1/models", headers={"x-api-key": CLIENT_KEY})).status_code == 200


async def test_rate_limited_key_gets_429_with_retry_after(http: httpx.AsyncClient) -> None:
    http.headers["authorization"] = f"Bearer {LIMITED_KEY}"
    # The burst is one request (6/min); it fails upstream (nothing listens), which still spends the token.
    await http.post("/v1/chat/completions", json=BODY)
    response = await http.post("/v1/chat/completions", json=BODY)
    error = assert_openai_error(response, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(response.headers["retry-after"]) <= 10


async def test_concurrency_cap_is_503_with_retry_after() -> None:
    app = create_app(keyed_config(server={"max_streams": 1}), ui=False)
    gateway = app.state.gateway
    from triage.app._auth import Caller

    lease = gateway.slots.acquire(Caller("someone", "client"))  # one request already in flight
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        response = await http.post("/v1/chat/completions", json=BODY)
    lease.release()
    assert_openai_error(response, 503, "overloaded")
    assert response.headers["retry-after"] == "1"
    assert gateway.slots.active == 0


async def test_cors_allows_only_listed_origins() -> None:
    app = create_app(keyed_config(server={"cors_origins": ["https://app.example"]}), ui=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        allowed = await http.options("/v1/chat/completions", headers={
            "origin": "https://app.example", "access-control-request-method": "POST"})
        refused = await http.options("/v1/chat/completions", headers={
            "origin": "https://evil.example", "access-control-request-method": "POST"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in refused.headers


def test_open_access_is_refused_off_loopback() -> None:
    from triage import ConfigError
    from triage.app import check_open_access

    open_config = gateway_config("http://127.0.0.1:9")
    check_open_access(open_config, "127.0.0.1")
    check_open_access(keyed_config(), "0.0.0.0")
    with pytest.raises(ConfigError, match="open access"):
        check_open_access(open_config, "0.0.0.0")


_JSON_PIECES = ['{"a":', "[", "]", "}", ",", '"x"', '"\\ud800"', '"\\u00e9"', "1", "-0", "1e400", "NaN",
                "123456789012345678901234567890", "true", "null", " ", "\n", "\t", '"', "\\", "\u00e9", "0.1"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_JSON_PIECES) | st.text(max_size=3), max_size=14).map("".join))
def test_loads_reads_what_json_reads(text: str) -> None:
    """The request path's JSON reader (jiter, then json for what jiter refuses) accepts exactly the documents
    json.loads accepts, with the same values (NaN compared as NaN)."""
    try:
        data = text.encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        return
    try:
        expected = json.loads(data)
    except ValueError:
        with pytest.raises(ValueError):
            loads(data)
        return
    got = loads(data)
    if isinstance(expected, float) and math.isnan(expected):
        assert isinstance(got, float) and math.isnan(got)
    else:
        assert got == expected or repr(got) == repr(expected)
