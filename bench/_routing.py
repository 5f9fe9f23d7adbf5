"""The routing half of `bench/peers.py`: Triage's classifier against aurelio's semantic-router, same data, same
encoder, same process.

- Data: ../shared/data/dev.jsonl; everything fitted on `split == "train"`, scored on `split == "test"`.
- Triage: the classifier `build_classifier` makes for `classifier.kind: cascade` (rules, then the local head; no
  LLM layer), on the shipped head, through its async `classify()`.
- semantic-router (installed in bench/.venv; its package directory is appended to this process's path, so it runs
  on this interpreter's numpy and pydantic): an `IndexedRouter` whose `DenseEncoder` wraps an instance of its own
  of the encoder class of Triage's local layer. Its routes hold 70% of the train split as utterances; its own
  `fit()` (Platt calibration) runs on the other 30%, so it is not calibrated on utterances it has indexed. Called
  through its async `acall()`.
- The same policy for both: a calibrated confidence below Triage's `classifier.threshold` (or no route) goes to the
  strongest model. Under-routing: the share of non-simple test items that end up on the simple route. Macro-F1:
  of the top category, before the threshold.
- Decision latency: each test item is classified by both, in alternating order, one at a time on one event loop,
  with one BLAS thread (threadpoolctl). Neither sees a test text before it is timed on it: the `tokenizers` BPE
  model caches the tokens of each text under 256 characters, so on one shared encoder whichever router encoded a
  text second was served from the first one's cache (and its embedding rows from a warm CPU cache). Hence one
  encoder instance per router, and a warm-up on the 903 held-out train texts (no test text is among them,
  lower-cased), each router on its own instance: a serving router has seen many requests, and the encoder keeps
  the token ids of the words it has met (semantic-router's instance has also met its 2,107 utterances).

Nothing here runs when the file itself is executed (`make bench` runs bench/*.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from _load import ROOT, percentile

__all__ = ["routing_report"]

SIMPLE = "simple"
CATEGORIES = ("simple", "reasoning", "tool_use")
_ENCODER_ATTRIBUTES = ("encoder", "_encoder", "embedder", "_embedder")


def under_routing(truth: Sequence[str], routed: Sequence[str | None]) -> float:
    """Share of the items that are not `simple` whose final route is `simple`."""
    hard = [r for t, r in zip(truth, routed, strict=True) if t != SIMPLE]
    return sum(r == SIMPLE for r in hard) / len(hard) if hard else float("nan")


def _split(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["split"] == "train"], [r for r in rows if r["split"] == "test"]


def _find_encoder(classifier: Any) -> Any:
    """The encoder object inside Triage's classifier (the cascade's local layer): the `triage.classify.local.Encoder`
    instance it holds, else anything held under an encoder-like name with an `embed`/`encode` method."""
    try:
        from triage.classify.local import Encoder
    except ImportError:
        Encoder = None
    seen: set[int] = set()
    todo = [classifier]
    named = None
    while todo:
        obj = todo.pop(0)
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type)):
            continue
        seen.add(id(obj))
        if Encoder is not None and isinstance(obj, Encoder):
            return obj
        for name in _ENCODER_ATTRIBUTES:
            candidate = getattr(obj, name, None)
            if named is None and candidate is not None and any(hasattr(candidate, m) for m in ("embed", "encode")):
                named = candidate
        fields = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
        fields += [getattr(obj, s, None) for s in getattr(type(obj), "__slots__", ())]
        todo += [f for f in fields if f is not None and (hasattr(f, "__dict__") or hasattr(type(f), "__slots__"))]
    if named is not None:
        return named
    raise LookupError("no encoder found inside Triage's local classifier")


def _own_instance(encoder: Any) -> Any:
    """A second encoder like `encoder`, sharing no state (tokenizer caches above all) with it: a fresh `load()` of
    its class when it has one, else a deep copy."""
    load = getattr(type(encoder), "load", None)
    return load() if callable(load) else copy.deepcopy(encoder)


def _encode_fn(encoder: Any) -> Any:
    import numpy as np

    method = next(getattr(encoder, m) for m in ("embed", "encode") if hasattr(encoder, m))

    def encode(texts: list[str]) -> list[list[float]]:
        return np.asarray(method(texts), dtype=np.float32).tolist()

    return encode


def _semantic_router(peers_site: Path) -> Any:
    if str(peers_site) not in sys.path:
        sys.path.append(str(peers_site))  # appended: this interpreter's own packages win
    import semantic_router

    return semantic_router


async def _evaluate(train: list[dict[str, Any]], test: list[dict[str, Any]], peers_site: Path, *,
                    fit_head: bool) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from harness import gateway_config
    finally:
        sys.path.remove(str(ROOT / "tests"))
    from triage.classify import ClassifyInput, build_classifier, train_head
    from triage.classify._evaluation import macro_f1
    from triage.classify.local import LocalClassifier, default_head_path
    from triage.route import plan_route

    config = gateway_config("http://127.0.0.1:9", classifier={"kind": "cascade"})
    threshold = config.classifier.threshold
    started = time.perf_counter()
    if default_head_path().exists() and not fit_head:
        local = LocalClassifier.from_config(config)
        head_note = "the shipped head"
    else:
        # No head ships yet (or asked to): fit one on the same train split semantic-router gets, with Triage's own
        # trainer (k-fold temperature calibration included).
        local = LocalClassifier(train_head([r["text"] for r in train], [r["label"] for r in train],
                                           categories=config.categories))
        head_note = f"a head fitted here on {len(train)} train items"
    triage = build_classifier(config, {}, local=local)
    triage_load_s = time.perf_counter() - started
    encode = _encode_fn(_own_instance(_find_encoder(triage)))

    sr = _semantic_router(peers_site)
    from semantic_router.encoders import DenseEncoder

    class TriageEncoder(DenseEncoder):
        """Triage's own encoder, as semantic-router's DenseEncoder (sync and async: the call does not block)."""

        name: str = "triage-local-encoder"

        def __call__(self, docs: list[Any]) -> list[list[float]]:
            return encode([str(d) for d in docs])

        async def acall(self, docs: list[Any]) -> list[list[float]]:
            return self(docs)

    rng = random.Random(0)
    shuffled = train[:]
    rng.shuffle(shuffled)
    cut = int(len(shuffled) * 0.7)
    indexed, held = shuffled[:cut], shuffled[cut:]
    routes = [sr.Route(name=c, utterances=[r["text"] for r in indexed if r["label"] == c]) for c in CATEGORIES]
    started = time.perf_counter()
    router = sr.IndexedRouter(encoder=TriageEncoder(), routes=routes, confidence_threshold=threshold)
    report = await router.afit([r["text"] for r in held], [r["label"] for r in held])
    sr_fit_s = time.perf_counter() - started

    async def triage_decide(text: str) -> tuple[str, str | None, float]:
        t0 = time.perf_counter()
        decision = await triage.classify(ClassifyInput.from_messages([{"role": "user", "content": text}]))
        ms = (time.perf_counter() - t0) * 1000
        plan = plan_route(decision, config)
        routed = decision.category if plan.reason != "low_confidence" else None  # None: the strongest model
        return decision.category, routed, ms

    async def sr_decide(text: str) -> tuple[str | None, str | None, float]:
        t0 = time.perf_counter()
        choice = await router.acall(text, limit=1, threshold=0.0)  # the top route, whatever its confidence
        ms = (time.perf_counter() - t0) * 1000
        top = getattr(choice, "name", None)
        confidence = getattr(choice, "confidence", None)
        routed = top if top is not None and confidence is not None and confidence >= threshold else None
        return top, routed, ms

    for item in held:  # warm both (first-call costs, word caches) on texts neither is timed on, as a server is warm
        await triage_decide(item["text"])
        await sr_decide(item["text"])
    results: dict[str, dict[str, list[Any]]] = {n: {"top": [], "routed": [], "ms": []} for n in ("triage", "sr")}
    for i, item in enumerate(test):
        order = [("triage", triage_decide), ("sr", sr_decide)]
        for name, decide in order if i % 2 == 0 else reversed(order):
            top, routed, ms = await decide(item["text"])
            results[name]["top"].append(top)
            results[name]["routed"].append(routed)
            results[name]["ms"].append(ms)
    truth = [r["label"] for r in test]
    out: dict[str, Any] = {"test_items": len(test), "threshold": threshold}
    for name, r in results.items():
        out["triage" if name == "triage" else "semantic_router"] = {
            "macro_f1": round(macro_f1(truth, r["top"], CATEGORIES), 4),
            "under_routing": round(under_routing(truth, r["routed"]), 4),
            "to_strongest": round(sum(x is None for x in r["routed"]) / len(test), 4),
            "latency_p50_ms": round(percentile(r["ms"], 50), 4),
            "latency_p99_ms": round(percentile(r["ms"], 99), 4),
        }
    out["triage"]["classifier"] = (
        f"{config.classifier.kind} ({type(triage).__name__}: rules, then the local layer on {head_note}), "
        f"built in {triage_load_s:.1f}s"
    )
    out["semantic_router"]["setup"] = (
        f"IndexedRouter, {len(indexed)} utterances, fit() on {len(held)} (accuracy {report.accuracy:.3f}), "
        f"built and fitted in {sr_fit_s:.1f}s, on its own instance of Triage's encoder"
    )
    return out


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread for both routers. Multi-threaded OpenBLAS on a loaded 2-core machine made semantic-router's
    index look-up (a 2,107 x 256 matrix product per query) about 7x slower (7.8 ms against 1.1 ms at p50); a router
    scoring one request at a time has no use for a BLAS thread pool."""
    import numpy  # noqa: F401  (threadpoolctl limits only the BLAS libraries already loaded)

    with contextlib.suppress(ImportError):
        import scipy.linalg  # noqa: F401
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield


def routing_report(data: Path, peers_python: Path, *, quick: bool, deadline: float,
                   fit_head: bool = False) -> dict[str, Any]:
    if not data.exists():
        print(f"\nrouting decisions: skipped, no {data}")
        return {"skipped": f"no {data}"}
    peers_site = next((peers_python.parent.parent / "lib").glob("python3*/site-packages"))
    train, test = _split(data)
    if quick:
        rng = random.Random(1)
        train, test = rng.sample(train, min(600, len(train))), rng.sample(test, min(150, len(test)))
    with _one_blas_thread():
        out = asyncio.run(_evaluate(train, test, peers_site, fit_head=fit_head))
    t, s = out["triage"], out["semantic_router"]
    print(f"\nrouting decisions on {out['test_items']} test items (threshold {out['threshold']}):")
    print(f"{'':16} {'macro-F1':>9} {'under-routing':>14} {'to strongest':>13} {'p50 ms':>9} {'p99 ms':>9}")
    for name, r in (("triage", t), ("semantic-router", s)):
        print(f"{name:16} {r['macro_f1']:9.4f} {r['under_routing']:14.4f} {r['to_strongest']:13.4f} "
              f"{r['latency_p50_ms']:9.3f} {r['latency_p99_ms']:9.3f}")
    print(f"  triage: {t['classifier']}\n  semantic-router: {s['setup']}")
    out["ratios"] = {
        "macro_f1": round(t["macro_f1"] / s["macro_f1"], 3) if s["macro_f1"] else None,
        "under_routing": round(t["under_routing"] / s["under_routing"], 3) if s["under_routing"] else None,
        "latency_p50": round(t["latency_p50_ms"] / s["latency_p50_ms"], 3) if s["latency_p50_ms"] else None,
        "latency_p99": round(t["latency_p99_ms"] / s["latency_p99_ms"], 3) if s["latency_p99_ms"] else None,
    }
    return out
