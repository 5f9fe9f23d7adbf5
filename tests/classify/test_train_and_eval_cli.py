"""`triage train`, `triage eval` and `triage calibrate` on small JSONL files written here."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from triage._config import default_config_path, load_config
from triage.classify import Head, Routed, choose_threshold, load_exemplars
from triage.cli import main
from triage.cli._evaluate import set_bar

EVAL_KEYS = {"accuracy", "macro_f1", "under_routing", "fallback_share", "cost_ratio", "p50_ms", "p99_ms"}


def _write_jsonl(path: Path, pairs: list[tuple[str, str]], **extra: object) -> Path:
    with path.open("w", encoding="utf-8") as file:
        for text, label in pairs:
            file.write(json.dumps({"text": text, "label": label, "source": "test", **extra}) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    pairs = load_exemplars()
    train = _write_jsonl(root / "train.jsonl", pairs[0::4], split="train")
    with (root / "train.jsonl").open("a", encoding="utf-8") as file:  # held out by --split
        file.write(json.dumps({"text": "never trained on", "label": "simple", "split": "test"}) + "\n")
    held_out = _write_jsonl(root / "test.jsonl", pairs[1::8])
    return {"root": root, "train": train, "test": held_out}


@pytest.fixture(scope="module")
def head(files: dict[str, Path]) -> Path:
    out = files["root"] / "heads" / "head.npz"
    assert main(["train", "--data", str(files["train"]), "--split", "train", "--out", str(out), "--folds", "3"]) == 0
    return out


def test_train_writes_a_calibrated_head(head: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    loaded = Head.load(head)
    n_train = len(load_exemplars()[0::4])
    assert loaded.meta["examples"] == n_train  # the `split: test` line was left out
    assert set(loaded.categories) == {"simple", "reasoning", "tool_use"} and loaded.temperature > 0
    # Exemplars alone, no data file.
    out = files["root"] / "exemplars-only.npz"
    assert main(["train", "--exemplars", "--out", str(out), "--folds", "0"]) == 0
    assert Head.load(out).meta["examples"] == len(load_exemplars())
    assert "wrote" in capsys.readouterr().out


def test_train_refuses_bad_input(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    bad = files["root"] / "bad.jsonl"
    bad.write_text('{"text": "no label here"}\n', encoding="utf-8")
    assert main(["train", "--data", str(bad), "--out", str(files["root"] / "x.npz")]) == 2
    assert "needs `text` and `label`" in capsys.readouterr().err
    assert main(["train", "--out", str(files["root"] / "x.npz")]) == 2


def test_eval_prints_the_figures_and_a_json_line(
    head: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--data", str(files["test"]), "--head", str(head), "--json"]) == 0
    out = capsys.readouterr().out
    for heading in ("macro-F1", "under-routing", "fallback", "cost vs all-strong", "p99", "precision", "confusion"):
        assert heading in out
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures) >= EVAL_KEYS
    assert figures["macro_f1"] > 0.7 and 0 < figures["cost_ratio"] <= 1
    assert 0 <= figures["under_routing"] <= 1 and figures["p50_ms"] <= figures["p99_ms"]


def test_calibrate_writes_a_threshold_that_meets_the_bound(
    head: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = files["root"] / "triage.yaml"
    shutil.copy(default_config_path(), config)
    args = ["--data", str(files["test"]), "--head", str(head)]
    assert main(["calibrate", *args, "--max-under-routing", "0.01", "--out", str(config)]) == 0
    assert "wrote classifier.thresholds.simple" in capsys.readouterr().out
    threshold = load_config(config).classifier.thresholds["simple"]
    assert "# The demo's configuration" in config.read_text(encoding="utf-8")  # comments kept
    assert main(["eval", *args, "--config", str(config), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["threshold"] == threshold and figures["under_routing"] <= 0.01


def test_choose_threshold_takes_the_least_fallback_within_the_bound() -> None:
    routed = [
        Routed("reasoning", "simple", 0.9, 0.1),  # under-routed even when confident
        Routed("tool_use", "simple", 0.6, 0.1),
        Routed("simple", "simple", 0.95, 0.1),
        Routed("simple", "simple", 0.55, 0.1),
        Routed("reasoning", "reasoning", 0.8, 0.1),
    ]
    assert choose_threshold(routed, "simple", 0.5) == (0.6001, 1 / 3, 0.4)
    # Only decisions for the cheap route fall back: the reasoning one at 0.8 keeps its route.
    assert choose_threshold(routed, "simple", 0.0) == (0.9001, 0.0, 0.6)
    assert choose_threshold(routed, "simple", 1.0)[0] == 0.0


def test_set_bar_edits_the_classifier_block(tmp_path: Path) -> None:
    config = tmp_path / "triage.yaml"
    base = default_config_path().read_text(encoding="utf-8")
    without = re.sub(r"(?ms)^classifier:\n(?:[ #].*?\n)+", "", base)
    assert "classifier:" not in without
    config.write_text(without, encoding="utf-8")
    set_bar(config, "simple", 0.7312)  # no classifier block: one is added
    assert load_config(config).classifier.thresholds == {"simple": 0.7312}
    set_bar(config, "simple", 0.65)  # an existing bar is edited in place
    set_bar(config, "tool_use", 0.4)  # another one joins it
    loaded = load_config(config).classifier
    assert loaded.thresholds == {"simple": 0.65, "tool_use": 0.4} and loaded.threshold_for("reasoning") == 0.5
    text = config.read_text(encoding="utf-8")
    assert text.count("simple: 0.65") == 1 and "0.7312" not in text
    config.write_text(base, encoding="utf-8")
    set_bar(config, "simple", 0.8)  # beside the global threshold in an existing block
    loaded = load_config(config).classifier
    assert loaded.thresholds == {"simple": 0.8} and loaded.threshold == 0.5


def test_eval_leaves_each_source_out_and_tables_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--loso`: a head per source, trained on the others, and the per-source table (issue 16)."""
    pairs = load_exemplars()[::3]
    data = tmp_path / "sources.jsonl"
    with data.open("w", encoding="utf-8") as file:
        for i, (text, label) in enumerate(pairs):
            row = {"text": text, "label": label, "source": f"s{i % 3}", **({"train": False} if i % 3 == 2 else {})}
            file.write(json.dumps(row) + "\n")
    assert main(["eval", "--data", str(data), "--loso", "--balance", "200", "--bags", "2", "--json"]) == 0
    out = capsys.readouterr().out
    assert "leave-one-source-out over 3 sources" in out and "conf.u" in out
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures["per_source"]) == {"s0", "s1", "s2"}
    assert figures["macro_f1"] > 0.7 and set(figures["per_source"]["s2"]) >= EVAL_KEYS | {"confident_under_routing"}
    # Calibrated out of source, the bar holds for the sources left out.
    config = tmp_path / "triage.yaml"
    shutil.copy(default_config_path(), config)
    assert main(["calibrate", "--data", str(data), "--loso", "--max-under-routing", "0.05", "--out", str(config)]) == 0
    assert 0 < load_config(config).classifier.thresholds["simple"] <= 1


def test_train_calibrates_out_of_source_and_balances_sources(tmp_path: Path) -> None:
    pairs = load_exemplars()[::2]
    data = tmp_path / "sources.jsonl"
    with data.open("w", encoding="utf-8") as file:
        for i, (text, label) in enumerate(pairs):
            file.write(json.dumps({"text": text, "label": label, "source": "big" if i % 4 else f"small{i % 8}"}) + "\n")
        file.write(json.dumps({"text": "an evaluation-only line", "label": "simple", "source": "x", "train": False}))
    out = tmp_path / "head.npz"
    args = ["train", "--data", str(data), "--balance", "100", "--folds", "3", "--bags", "2", "--out", str(out)]
    assert main(args) == 0
    head = Head.load(out)
    assert head.meta["calibration"] == "out of source" and head.meta["examples"] == len(pairs)
    assert head.meta["bags"] == 2
