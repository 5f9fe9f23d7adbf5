from __future__ import annotations

from pathlib import Path

import pytest

from triage import ConfigError, load_config


def test_shipped_configs_load() -> None:
    config = load_config()
    assert set(config.categories) == {"simple", "reasoning", "tool_use"}
    example = load_config(Path(__file__).parent.parent / "triage.example.yaml")
    assert example.strongest_model == "gpt-4o"
    assert example.routes["simple"].models[0] == "gpt-4o-mini"


def test_a_bad_reference_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "providers: {p: {base_url: 'http://x/v1'}}\n"
        "models: {m: {provider: p, upstream_id: m}}\n"
        "routes: {simple: {models: [m, nope]}}\n"
    )
    with pytest.raises(ConfigError, match=r"routes\.simple\.models\.1: unknown model 'nope'"):
        load_config(path)


def test_a_wrong_type_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "providers: {p: {base_url: 'http://x/v1'}}\n"
        "models: {m: {provider: p, upstream_id: m, input_per_mtok: -1}}\n"
        "routes: {simple: {models: [m]}}\n"
    )
    with pytest.raises(ConfigError, match=r"models\.m\.input_per_mtok"):
        load_config(path)


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("providers: {}\nmodels: {}\nroutes: {}\ntypo_here: 1\n")
    with pytest.raises(ConfigError, match="typo_here"):
        load_config(path)


def test_env_vars_override_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_CLASSIFIER__THRESHOLD", "0.77")
    assert load_config().classifier.threshold == 0.77


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
