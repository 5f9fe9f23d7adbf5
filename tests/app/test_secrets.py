"""An upstream key never reaches a log line, an error body, a header, /metrics or the UI stream."""

from __future__ import annotations

import logging

import httpx
import openai
import pytest
from harness import SimControl, gateway_config, run_triage

SECRET = "sk-test-Secr3tKeyThatMustNeverLeak-0123456789"


async def test_the_upstream_key_never_leaks(
    sim_control: SimControl, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SIM_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    config = gateway_config(sim_control.url, providers={
        "sim": {"base_url": sim_control.url + "/v1", "api_key_env": "SIM_TEST_KEY",
                "timeout": {"connect": 2, "first_token": 2, "idle": 1, "total": 10}},
        "down": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "SIM_TEST_KEY"},
    })
    seen: list[str] = []
    with run_triage(config) as server:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="client", max_retries=0) as client, \
                httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            messages = [{"role": "user", "content": "hi"}]
            for behaviour in ({}, {"status": 401}, {"status": 500}, {"cut_after": 2}, {"malformed_after": 1},
                              {"stall_after": 1, "stall_s": 3}):
                sim_control.behave("cheap", **behaviour)
                sim_control.behave("backup", **behaviour)
                for stream in (False, True):
                    response = await http.post("/v1/chat/completions",
                                               json={"model": "auto", "messages": messages, "stream": stream})
                    seen.append(str(response.headers) + response.text)
                ui = await http.post("/v1/triage/chat", json={"messages": messages, "structured": True})
                seen.append(str(ui.headers) + ui.text)
            response = await http.post("/v1/chat/completions", json={"model": "offline", "messages": messages})
            seen.append(response.text)
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model="offline", messages=messages)  # type: ignore[arg-type]
            seen.append(str(caught.value))
            seen.append((await http.get("/metrics")).text)
    assert sim_control.stats()["requests"] > 10  # the key did go upstream, where it belongs
    logged = "\n".join(caplog.text.splitlines() + [r.getMessage() for r in caplog.records])
    assert "401" in "\n".join(seen)
    for text in (*seen, logged):
        assert SECRET not in text
        assert SECRET[8:30] not in text  # nor a recognisable part of it
