"""TriageMiddleware inside host Starlette and FastAPI apps: Triage under its prefix, host routes unharmed."""

from __future__ import annotations

from collections.abc import Iterator

import fastapi
import httpx
import openai
import pytest
from harness import SimControl, gateway_config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from triage import TriageMiddleware
from triage._types import ASGIApp
from triage.sim import BackgroundServer


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("host says hello")


async def host_stream(request: Request) -> StreamingResponse:
    async def body() -> Iterator[bytes]:  # type: ignore[misc]
        for i in range(3):
            yield f"part {i}\n".encode()

    return StreamingResponse(body())


def starlette_host() -> Starlette:
    return Starlette(routes=[Route("/hello", hello), Route("/stream", host_stream),
                             Route("/triage-lookalike", hello)])


def fastapi_host() -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    @app.get("/hello")
    async def fastapi_hello() -> PlainTextResponse:
        return PlainTextResponse("host says hello")

    @app.post("/echo")
    async def echo(payload: dict[str, int]) -> dict[str, int]:
        return payload

    return app


@pytest.fixture(params=["starlette", "fastapi"])
def host(request: pytest.FixtureRequest, sim_control: SimControl) -> Iterator[BackgroundServer]:
    app: ASGIApp
    if request.param == "starlette":
        app = TriageMiddleware(starlette_host(), config=gateway_config(sim_control.url), prefix="/triage")
    else:
        fast = fastapi_host()
        fast.add_middleware(TriageMiddleware, config=gateway_config(sim_control.url), prefix="/triage")
        app = fast
    with BackgroundServer(app) as server:
        server.kind = request.param  # type: ignore[attr-defined]
        yield server


async def test_triage_answers_under_its_prefix(host: BackgroundServer) -> None:
    async with openai.AsyncOpenAI(base_url=host.url + "/triage/v1", api_key="x", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-triage-model"] == "cheap"
        stream = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert {chunk.model async for chunk in stream} == {"cheap"}
        assert [m.id async for m in client.models.list()][:1] == ["auto"]


async def test_host_routes_are_untouched(host: BackgroundServer) -> None:
    async with httpx.AsyncClient(base_url=host.url) as http:
        assert (await http.get("/hello")).text == "host says hello"
        missing = await http.get("/nope")
        assert missing.status_code == 404 and "error" not in missing.text  # the host's own 404, not Triage's
        if host.kind == "starlette":  # type: ignore[attr-defined]
            assert (await http.get("/stream")).text == "part 0\npart 1\npart 2\n"
        else:
            assert (await http.post("/echo", json={"a": 1})).json() == {"a": 1}


async def test_prefix_match_is_by_path_segment(host: BackgroundServer) -> None:
    async with httpx.AsyncClient(base_url=host.url) as http:
        response = await http.get("/triage-lookalike")
    # Served by the host: Starlette has the route; FastAPI answers its own 404 ({"detail": ...}), not Triage's.
    if host.kind == "starlette":  # type: ignore[attr-defined]
        assert response.text == "host says hello"
    else:
        assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


async def test_triage_errors_keep_openai_shape_under_the_prefix(host: BackgroundServer) -> None:
    async with httpx.AsyncClient(base_url=host.url) as http:
        response = await http.post("/triage/v1/chat/completions", json={"model": "nope", "messages": []})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_prefix_must_be_a_clean_path() -> None:
    with pytest.raises(ValueError, match="prefix"):
        TriageMiddleware(starlette_host(), prefix="triage/")
