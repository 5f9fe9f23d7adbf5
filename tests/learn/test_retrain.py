"""Head versions, rollback, and moving a running server onto a new head while it streams."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SimControl, gateway_config
from test_feedback import KEYS, LoopGateway, auth, learning_app
from test_store import make_record

from triage._config import StoreConfig
from triage.app import hash_key
from triage.classify import DEFAULT_CATEGORIES, Classifier, ClassifyInput, Decision, Head, LayerTiming
from triage.classify._evaluation import macro_f1
from triage.cli._retrain import run_retrain, run_rollback
from triage.learn import (
    DEFAULT_VERSION,
    HeadVersions,
    LabeledText,
    heads_dir,
    make_reloader,
    open_store,
    retrain,
    split_corrections,
)
from triage.learn._trainer import HEAD_FILE, base_data
from triage.sim import BackgroundServer


class Tagged:
    """A classifier that says which head version it was built from."""

    def __init__(self, version: str) -> None:
        self.name = "local"
        self.version = version

    @property
    def categories(self) -> Sequence[str]:
        return DEFAULT_CATEGORIES

    async def classify(self, request: ClassifyInput) -> Decision:
        await asyncio.sleep(0.002)  # a request can be mid-classification when the swap happens
        return Decision("simple", 0.9, {"simple": 0.9, "reasoning": 0.05, "tool_use": 0.05}, self.name, 2.0,
                        (LayerTiming("local", 2.0),))


def tagged_build(path: Path | None) -> Classifier:
    if path is None:
        return Tagged(DEFAULT_VERSION)
    content = (path / "head.txt").read_text()
    if content == "broken":
        raise ValueError("not a head")
    return Tagged(path.name)


def stage(versions: HeadVersions, content: str) -> str:
    staging = versions.staging()
    (staging / "head.txt").write_text(content)
    return versions.install(staging, {"note": content})


def test_versions_install_and_roll_back(tmp_path: Path) -> None:
    versions = HeadVersions(tmp_path / "heads")
    assert versions.current() == DEFAULT_VERSION and versions.versions() == []
    with pytest.raises(LookupError):
        versions.rollback()
    assert stage(versions, "one") == "v0001"
    assert stage(versions, "two") == "v0002"
    assert versions.current() == "v0002"
    assert versions.info("v0002").meta["parent"] == "v0001"
    assert (tmp_path / "heads" / "v0002" / "head.txt").read_text() == "two"
    assert versions.rollback() == ("v0002", "v0001")
    assert versions.rollback() == ("v0001", DEFAULT_VERSION)
    # Versions are kept: a rolled-back version can be put back, and the next install numbers on.
    versions.set_current("v0002")
    assert stage(versions, "three") == "v0003"
    assert [p.name for p in (tmp_path / "heads").iterdir() if p.name.startswith(".")] == []
    actions = [json.loads(line)["action"] for line in (tmp_path / "heads" / "history.jsonl").read_text().splitlines()]
    assert actions == ["install", "install", "rollback", "rollback", "install"]


async def _stream(http: httpx.AsyncClient, i: int) -> tuple[int, str]:
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": f"tell me a story {i}"}]}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=auth("admin")) as response:
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    return response.status_code, lines[-1] if lines else ""


async def test_reload_while_streaming_fails_nothing(sim_control: SimControl, tmp_path: Path) -> None:
    sim_control.behave("cheap", ttft_ms=20, tokens_per_s=100, completion_tokens=40)  # streams of ~0.4 s
    config = gateway_config(
        sim_control.url, store={"path": str(tmp_path / "triage.db")},
        auth={"keys": [{"id": f"{role}-1", "sha256": hash_key(key), "role": role} for role, key in KEYS.items()]},
    )
    versions = HeadVersions(heads_dir(config))
    stage(versions, "one")  # v0001 is in service before the server starts: it loads it at start
    gateway = LoopGateway(config, build=tagged_build, classifier=Tagged(DEFAULT_VERSION), watch_interval=0.02)
    with BackgroundServer(learning_app(gateway)) as server:
        assert gateway.reloader.loaded == "v0001"
        assert isinstance(gateway.classifier, Tagged) and gateway.classifier.version == "v0001"
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            streams = [asyncio.create_task(_stream(http, i)) for i in range(24)]
            await asyncio.sleep(0.05)
            stage(versions, "two")  # picked up by the watcher
            assert not any(task.done() for task in streams)  # the swap happens mid-stream
            reloads = [await http.post("/v1/admin/reload", headers=auth("admin")) for _ in range(3)]
            more = [asyncio.create_task(_stream(http, i)) for i in range(24, 32)]
            await asyncio.sleep(0.05)
            stage(versions, "broken")  # fails to load: v0002 stays in service
            await asyncio.sleep(0.1)
            failed = await http.post("/v1/admin/reload", headers=auth("admin"))
            versions.rollback()  # back to v0002, from the command line
            results = await asyncio.gather(*streams, *more)
            forbidden = await http.post("/v1/admin/reload", headers=auth("reviewer"))
    assert results == [(200, "data: [DONE]")] * 32
    assert all(r.status_code == 200 for r in reloads)
    assert reloads[-1].json() == {"object": "triage.head", "version": "v0002", "previous": "v0002", "reloaded": True}
    assert failed.status_code == 500 and "v0003" in failed.json()["error"]["message"]
    assert forbidden.status_code == 403
    assert isinstance(gateway.classifier, Tagged) and gateway.classifier.version == "v0002"


class BagOfWords:
    """A Trainer small enough to read: multinomial naive Bayes on lower-cased words, sample weights honoured.
    The guard's logic is the subject here, not the model."""

    def fit(self, texts: Sequence[str], labels: Sequence[str], weights: Sequence[float]) -> dict[str, Any]:
        counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        priors: dict[str, float] = defaultdict(float)
        for text, label, w in zip(texts, labels, weights, strict=True):
            priors[label] += w
            for word in _words(text):
                counts[label][word] += w
        return {"priors": dict(priors), "counts": {k: dict(v) for k, v in counts.items()}}

    def predict(self, head: dict[str, Any], texts: Sequence[str]) -> list[str]:
        vocab = {w for c in head["counts"].values() for w in c}
        total = sum(head["priors"].values())
        sizes = {k: sum(c.values()) for k, c in head["counts"].items()}

        def score(label: str, words: list[str]) -> float:
            c = head["counts"][label]
            return math.log(head["priors"][label] / total) + sum(
                math.log((c.get(w, 0) + 1) / (sizes[label] + len(vocab))) for w in words)

        return [max(head["counts"], key=lambda label: score(label, _words(t))) for t in texts]

    def save(self, head: dict[str, Any], directory: Path) -> None:
        (directory / "head.json").write_text(json.dumps(head))

    def load(self, directory: Path | None) -> dict[str, Any]:
        if directory is None:
            base = base_data()
            return self.fit(base.train_texts, base.train_labels, [1.0] * len(base.train_texts))
        head: dict[str, Any] = json.loads((directory / "head.json").read_text())
        return head


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def corrections_from(pairs: Sequence[tuple[str, str]], tag: str) -> list[LabeledText]:
    return [LabeledText(f"req_{tag}_{i}", text, label, None, 0.0) for i, (text, label) in enumerate(pairs)]


def test_poisoned_corrections_are_refused_unless_forced(tmp_path: Path) -> None:
    base = base_data()
    versions = HeadVersions(tmp_path / "heads")
    trainer = BagOfWords()
    train = list(zip(base.train_texts, base.train_labels, strict=True))
    # Right labels (a fresh look at texts like the base set's): accepted.
    good = corrections_from(train[::5], "good")
    report = retrain(trainer, base, good, versions, categories=DEFAULT_CATEGORIES, tolerance=0.02)
    assert report.installed and not report.forced and report.version == "v0001" == versions.current()
    assert report.corrections_holdout > 0 and report.corrections_train + report.corrections_holdout == len(good)
    # Wrong labels: every reasoning text called simple, every tool_use text called reasoning.
    flip = {"reasoning": "simple", "tool_use": "reasoning", "simple": "simple"}
    bad = corrections_from([(t, flip[c]) for t, c in train if c != "simple"], "bad")
    refused = retrain(trainer, base, bad, versions, categories=DEFAULT_CATEGORIES)
    assert not refused.installed and refused.version is None and versions.current() == "v0001"
    assert refused.old_shipped.macro_f1 is not None and refused.new_shipped.macro_f1 is not None
    assert refused.new_shipped.macro_f1 < refused.old_shipped.macro_f1 - 0.1
    assert "macro-F1 on the shipped evaluation set would fall" in refused.reason
    assert versions.versions() == ["v0001"]  # the candidate left nothing behind
    forced = retrain(trainer, base, bad, versions, categories=DEFAULT_CATEGORIES, force=True)
    assert forced.installed and forced.forced and versions.current() == "v0002"
    assert versions.info("v0002").meta["forced"] is True
    # And back, from the command line.
    assert run_rollback(argparse.Namespace(heads=str(versions.root), config=None, to=None)) == 0
    assert versions.current() == "v0001"
    actions = [json.loads(line)["action"] for line in (versions.root / "history.jsonl").read_text().splitlines()]
    assert actions == ["install", "refused", "install", "rollback"]


def test_the_guard_judges_against_a_fixed_anchor_so_small_losses_cannot_add_up(tmp_path: Path) -> None:
    """Issue 16: judged against the head it replaced, each of a run of slightly poisoned batches lost less than the
    tolerance and was installed, and the losses added up (guard-set macro-F1 0.997 -> 0.961 over four installs).
    Against the fixed anchor the total loss stays within the tolerance, whatever the number of steps."""
    base = base_data()
    versions = HeadVersions(tmp_path / "heads")
    trainer = BagOfWords()
    tool_texts = [t for t, c in zip(base.train_texts, base.train_labels, strict=True) if c == "tool_use"]
    corrections: list[LabeledText] = []
    reports = []
    for step in range(5):  # each batch calls 40 more tool requests simple; the store keeps the earlier ones
        corrections += corrections_from([(t, "simple") for t in tool_texts[40 * step : 40 * (step + 1)]], f"p{step}")
        reports.append(retrain(trainer, base, corrections, versions, categories=DEFAULT_CATEGORIES, tolerance=0.02))
    references = {r.reference_shipped.macro_f1 for r in reports if r.reference_shipped is not None}
    assert len(references) == 1 and all(r.anchor == DEFAULT_VERSION for r in reports)
    reference = references.pop()
    assert reference is not None
    installed = [r for r in reports if r.installed]
    refused = [r for r in reports if not r.installed]
    assert installed and refused
    assert all(r.new_shipped.macro_f1 is not None and r.new_shipped.macro_f1 >= reference - 0.02 for r in installed)
    # The first refusal is a step a step-by-step guard would have taken: within the tolerance of the head in service.
    first = refused[0]
    assert first.old_shipped.macro_f1 is not None and first.new_shipped.macro_f1 is not None
    assert first.new_shipped.macro_f1 >= first.old_shipped.macro_f1 - 0.02
    assert first.new_shipped.macro_f1 < reference - 0.02


def test_an_admin_pins_the_anchor(tmp_path: Path) -> None:
    versions = HeadVersions(tmp_path / "heads")
    assert versions.anchor() == DEFAULT_VERSION
    with pytest.raises(LookupError):
        versions.pin_anchor("v0001")
    trainer = BagOfWords()
    staging = versions.staging()
    trainer.save(trainer.load(None), staging)
    versions.install(staging, {})
    versions.pin_anchor("v0001")
    assert versions.anchor() == "v0001"
    report = retrain(trainer, base_data(), [], versions, categories=DEFAULT_CATEGORIES)
    assert report.reference == "anchor v0001" and report.anchor == "v0001"
    versions.pin_anchor(DEFAULT_VERSION)
    assert versions.anchor() == DEFAULT_VERSION


def test_correction_split_is_stable() -> None:
    examples = corrections_from([(f"text {i}", "simple") for i in range(1000)], "s")
    _, held = split_corrections(examples, 0.2)
    assert 150 < len(held) < 250
    # A correction keeps its side when more arrive: held-out corrections never leak into a later training set.
    _, held2 = split_corrections(examples + corrections_from([("more", "simple")] * 50, "t"), 0.2)
    assert set(c.request_id for c in held) <= set(c.request_id for c in held2)
    assert macro_f1(["a", "b", "b"], ["a", "b", "a"], ["a", "b"]) == pytest.approx((2 / 3 + 2 / 3) / 2)


async def test_retrain_command_on_the_real_head(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`triage retrain` end to end: corrections from a SQLite store, the local classifier's own trainer and shipped
    head, the guard."""
    pytest.importorskip("wordllama")
    base = base_data()
    store_path = str(tmp_path / "triage.db")
    pairs = list(zip(base.train_texts, base.train_labels, strict=True))
    right = pairs[::8]
    wrong = [(t, "simple") for t, c in pairs if c == "tool_use"]
    async with open_store(StoreConfig(path=store_path)) as store:
        for i, (text, _) in enumerate(right):
            store.submit(make_record(f"req_good_{i}", text=text))
        await store.flush()
        for i, (_, category) in enumerate(right):
            await store.add_correction(f"req_good_{i}", category)
    args = argparse.Namespace(config=None, heads=str(tmp_path / "heads"), store=store_path, weight=3.0, holdout=0.2,
                              tolerance=0.02, force=False)
    versions = HeadVersions(tmp_path / "heads")
    # Honest corrections against the shipped head (which trained on the evaluation exemplars): judged against the
    # base data alone, and installed.
    assert await asyncio.to_thread(run_retrain, args) == 0, capsys.readouterr()
    assert "base data alone" in capsys.readouterr().out  # the default anchor's stand-in
    assert versions.current() == "v0001"
    async with open_store(StoreConfig(path=store_path)) as store:
        for i, (text, _) in enumerate(wrong):
            store.submit(make_record(f"req_bad_{i}", text=text, category="tool_use"))
        await store.flush()
        for i, (_, category) in enumerate(wrong):
            await store.add_correction(f"req_bad_{i}", category)
    assert await asyncio.to_thread(run_retrain, args) == 1
    assert "refused: macro-F1 on the shipped evaluation set would fall" in capsys.readouterr().err
    assert versions.current() == "v0001" and versions.versions() == ["v0001"]
    args.force = True
    assert await asyncio.to_thread(run_retrain, args) == 0
    assert "WARNING: installed despite the guard" in capsys.readouterr().err
    assert versions.current() == "v0002"
    head = Head.load(versions.root / "v0002" / HEAD_FILE)
    assert head.categories == DEFAULT_CATEGORIES


async def test_make_reloader_builds_the_configured_classifier_on_a_version(tmp_path: Path) -> None:
    pytest.importorskip("wordllama")
    from triage.classify.local import LocalClassifier, default_head_path

    config = gateway_config("http://127.0.0.1:9", store={"path": str(tmp_path / "triage.db")},
                            classifier={"kind": "local"})
    assert make_reloader(gateway_config("http://127.0.0.1:9"), {}, lambda c: None) is None  # kind: rules
    versions = HeadVersions(heads_dir(config))
    staging = versions.staging()
    shipped = Head.load(default_head_path())
    shipped.meta = {"tag": "v0001's"}
    shipped.save(staging / HEAD_FILE)
    versions.install(staging, {})
    swapped: list[Classifier] = []
    reloader = make_reloader(config, {}, swapped.append, interval=60)
    assert reloader is not None
    await reloader.start()
    try:
        [first] = swapped
        assert isinstance(first, LocalClassifier) and first.head.meta == {"tag": "v0001's"}
        versions.rollback()  # to the default head
        result = await reloader.reload()
        assert (result.version, result.previous, result.reloaded) == (DEFAULT_VERSION, "v0001", True)
        assert isinstance(swapped[-1], LocalClassifier) and swapped[-1].head.meta != {"tag": "v0001's"}
    finally:
        await reloader.stop()
