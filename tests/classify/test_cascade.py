"""The cascade: rules -> local -> LLM, with a stub local layer and the simulator acting as the LLM over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import openai
import pytest
from harness import SimControl, gateway_config, run_triage

from triage import ClassifierError, ClassifyInput, ConfigError, Decision, LayerTiming, RulesClassifier
from triage.classify import DEFAULT_CATEGORIES, CascadeClassifier, build_classifier
from triage.classify._llm import NO_LOGPROBS_CONFIDENCE, LLMClassifier
from triage.route import plan_route
from triage.upstream import StagedClassifier

# The harness's fixtures, imported by name so pytest finds them here.

MODEL = "clf"
FAST = {"ttft_ms": 0, "tokens_per_s": 0}
VAGUE = ClassifyInput("hmm, what about the other one?")


class StubLocal:
    """A local layer with a fixed answer; `fail` makes it raise instead."""

    name = "stub"

    def __init__(self, category: str = "simple", confidence: float = 0.9, *, fail: bool = False) -> None:
        self.answer = Decision(category, confidence, {category: confidence}, "stub", 0.01, (LayerTiming("stub", 0.01),))
        self.fail = fail
        self.calls = 0

    @property
    def categories(self) -> Sequence[str]:
        return DEFAULT_CATEGORIES

    async def classify(self, request: ClassifyInput) -> Decision:
        self.calls += 1
        if self.fail:
            raise RuntimeError("no head loaded")
        return self.answer


def cascade(
    local: StubLocal, llm: LLMClassifier | None, *, local_threshold: float = 0.5, llm_threshold: float = 0.6
) -> CascadeClassifier:
    return CascadeClassifier(
        RulesClassifier(), local, llm, local_threshold=local_threshold, llm_threshold=llm_threshold
    )


def layer_names(decision: Decision) -> list[str]:
    return [t.layer for t in decision.layers]


async def test_a_rule_decides_before_the_local_layer(sim_client: openai.AsyncOpenAI) -> None:
    local = StubLocal()
    decision = await cascade(local, LLMClassifier(sim_client, MODEL)).classify(ClassifyInput("Solve 2x + 3 = 7"))
    assert (decision.category, decision.confidence, decision.classifier) == ("reasoning", 1.0, "rules")
    assert layer_names(decision) == ["rules"] and local.calls == 0


async def test_a_confident_local_layer_never_asks_the_llm(
    sim_client: openai.AsyncOpenAI, sim_control: SimControl
) -> None:
    decision = await cascade(StubLocal("simple", 0.9), LLMClassifier(sim_client, MODEL)).classify(VAGUE)
    assert (decision.category, decision.confidence, decision.classifier) == ("simple", 0.9, "local")
    assert layer_names(decision) == ["rules", "local"]
    assert decision.latency_ms == pytest.approx(sum(t.ms for t in decision.layers), abs=0.5)
    assert sim_control.requests_to(MODEL) == 0


@pytest.mark.parametrize("mode", ["tools", "json_schema"])
async def test_an_unsure_local_layer_asks_the_llm(
    sim_client: openai.AsyncOpenAI, sim_control: SimControl, mode: str
) -> None:
    sim_control.behave(
        MODEL, tool_arguments={"category": "reasoning"}, reply='{"category": "reasoning"}', logprob=-0.01, ttft_ms=30
    )
    llm = LLMClassifier(sim_client, MODEL, mode="tools" if mode == "tools" else "json_schema")
    decision = await cascade(StubLocal("simple", 0.3), llm).classify(VAGUE)
    assert (decision.category, decision.classifier) == ("reasoning", "llm")
    # TOOLS: no logprobs for tool calls, the fixed confidence; JSON schema: the tokens' probability.
    assert decision.confidence == NO_LOGPROBS_CONFIDENCE if mode == "tools" else decision.confidence > 0.95
    assert layer_names(decision) == ["rules", "local", "llm"]
    assert decision.layers[2].ms >= 30
    assert decision.latency_ms == pytest.approx(sum(t.ms for t in decision.layers), abs=0.5)
    assert sim_control.requests_to(MODEL) == 1


async def test_an_unsure_llm_keeps_its_low_confidence(sim_client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave(MODEL, reply='{"category": "reasoning"}', logprob=-1.0, **FAST)
    classifier = cascade(StubLocal("simple", 0.3), LLMClassifier(sim_client, MODEL, mode="json_schema"))
    decision = await classifier.classify(VAGUE)
    assert decision.classifier == "llm" and decision.confidence < 0.6
    assert not classifier.is_sure(decision)
    # A policy that holds LLM answers to the LLM layer's threshold sends it to the strongest model.
    config = gateway_config("http://127.0.0.1:1", classifier={"threshold": 0.6})
    assert plan_route(decision, config).reason == "low_confidence"


@pytest.mark.parametrize("behaviour", [{"ttft_ms": 500}, {"status": 503}])
async def test_a_failed_llm_keeps_the_local_decision_and_its_time(
    sim_client: openai.AsyncOpenAI, sim_control: SimControl, behaviour: dict[str, float]
) -> None:
    sim_control.behave(MODEL, tool_arguments={"category": "reasoning"}, **behaviour)
    classifier = cascade(StubLocal("tool_use", 0.2), LLMClassifier(sim_client, MODEL, timeout=0.15))
    decision = await classifier.classify(VAGUE)
    assert (decision.category, decision.confidence, decision.classifier) == ("tool_use", 0.2, "local")
    assert layer_names(decision) == ["rules", "local", "llm"]
    if "ttft_ms" in behaviour:
        assert 150 <= decision.layers[2].ms < 400
    assert decision.latency_ms == pytest.approx(sum(t.ms for t in decision.layers), abs=0.5)


async def test_without_an_llm_an_unsure_local_decision_stands() -> None:
    classifier = cascade(StubLocal("simple", 0.2), None)
    decision = await classifier.classify(VAGUE)
    assert (decision.confidence, decision.classifier) == (0.2, "local")
    assert not classifier.needs_llm(decision) and classifier.expected_llm_ms == 0


async def test_a_failed_local_layer_falls_to_the_llm(sim_client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave(MODEL, tool_arguments={"category": "simple"}, **FAST)
    decision = await cascade(StubLocal(fail=True), LLMClassifier(sim_client, MODEL)).classify(VAGUE)
    assert (decision.category, decision.classifier) == ("simple", "llm")
    assert layer_names(decision) == ["rules", "local", "llm"]
    with pytest.raises(ClassifierError, match="RuntimeError"):
        await cascade(StubLocal(fail=True), None).classify(VAGUE)


async def test_prior_user_turns_reach_the_llm_prompt(sim_client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave(MODEL, tool_arguments={"category": "reasoning"}, **FAST)
    messages = [
        {"role": "user", "content": "How do I reverse a linked list in C?"},
        {"role": "assistant", "content": "Walk it with three pointers..."},
        {"role": "user", "content": "and in Python?"},
    ]
    request = ClassifyInput.from_messages(messages, context_turns=2)
    await cascade(StubLocal("simple", 0.1), LLMClassifier(sim_client, MODEL)).classify(request)
    prompt = sim_control.last_request(MODEL)["messages"][-1]["content"]
    assert "reverse a linked list in C" in prompt and prompt.endswith("and in Python?")
    assert "three pointers" not in prompt  # assistant turns are not classifier context


async def test_two_steps_let_speculation_start_only_when_the_llm_is_asked(
    sim_client: openai.AsyncOpenAI, sim_control: SimControl
) -> None:
    sim_control.behave(MODEL, tool_arguments={"category": "reasoning"}, ttft_ms=50)
    classifier = cascade(StubLocal("simple", 0.3), LLMClassifier(sim_client, MODEL, expected_ms=120))
    assert isinstance(classifier, StagedClassifier)  # the gateway drives it in steps
    assert classifier.expected_llm_ms == 120
    local = await classifier.classify_local(VAGUE)
    assert classifier.needs_llm(local) and layer_names(local) == ["rules", "local"]
    # What the gateway would do: start the cheap model now, while the LLM layer runs.
    speculation = asyncio.create_task(asyncio.sleep(0))
    decision = await classifier.escalate(VAGUE, local)
    await speculation
    assert decision.classifier == "llm" and layer_names(decision) == ["rules", "local", "llm"]
    rule = await classifier.classify_local(ClassifyInput("x", has_tools=True))
    assert not classifier.needs_llm(rule)


async def test_the_llm_band_follows_each_category_s_bar(sim_client: openai.AsyncOpenAI) -> None:
    """The cheap route's bar (classifier.thresholds) also decides when the LLM layer is asked: a 0.7 `simple` is
    unsure under a 0.8 bar, a 0.7 `reasoning` sure under the global 0.5 (issue 16)."""
    llm = LLMClassifier(sim_client, MODEL)
    bars = {"simple": 0.8}
    simple = CascadeClassifier(RulesClassifier(), StubLocal("simple", 0.7), llm, local_threshold=0.5,
                               local_thresholds=bars)
    reasoning = CascadeClassifier(RulesClassifier(), StubLocal("reasoning", 0.7), llm, local_threshold=0.5,
                                  local_thresholds=bars)
    assert simple.needs_llm(await simple.classify_local(VAGUE))
    assert not reasoning.needs_llm(await reasoning.classify_local(VAGUE))
    assert not simple.is_sure(await simple.classify_local(VAGUE))


async def test_build_classifier_builds_each_kind(sim_client: openai.AsyncOpenAI) -> None:
    llm = {"model": "cheap", "mode": "json_schema", "threshold": 0.7, "timeout": 0.5, "expected_ms": 90}
    config = gateway_config("http://127.0.0.1:1", classifier={"kind": "cascade", "threshold": 0.4, "llm": llm})
    built = build_classifier(config, {"sim": sim_client}, local=StubLocal())
    assert isinstance(built, CascadeClassifier)
    assert (built.local_threshold, built.llm_threshold, built.expected_llm_ms) == (0.4, 0.7, 90)
    with pytest.raises(ConfigError, match="no client for provider 'sim'"):
        build_classifier(config, {}, local=StubLocal())
    rules = build_classifier(gateway_config("http://127.0.0.1:1"), {})
    assert isinstance(rules, RulesClassifier)
    local = StubLocal()
    assert (
        build_classifier(gateway_config("http://127.0.0.1:1", classifier={"kind": "local"}), {}, local=local) is local
    )
    no_llm = build_classifier(gateway_config("http://127.0.0.1:1", classifier={"kind": "cascade"}), {}, local=local)
    assert isinstance(no_llm, CascadeClassifier) and no_llm.expected_llm_ms == 0


async def test_the_real_local_layer_in_the_cascade(sim_client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave("cheap", tool_arguments={"category": "reasoning"}, **FAST)
    config = gateway_config(sim_control.url, classifier={"kind": "cascade", "llm": {"model": "cheap"}})
    classifier = build_classifier(config, {"sim": sim_client})
    assert isinstance(classifier, CascadeClassifier)
    for text in ("What's the capital of France?", "hmm", "and the other one?"):
        decision = await classifier.classify(ClassifyInput(text))
        assert decision.category in config.categories
        assert layer_names(decision)[:2] == ["rules", "local"]
        assert (decision.classifier == "llm") == (len(decision.layers) == 3 and decision.layers[2].layer == "llm")


async def test_the_gateway_routes_on_the_llm_layer(sim_control: SimControl) -> None:
    sim_control.behave(MODEL, tool_arguments={"category": "reasoning"}, **FAST)
    # Its own client, first used on the gateway's loop (built in the test, as the gateway would in `start`).
    llm_client = openai.AsyncOpenAI(base_url=sim_control.url + "/v1", api_key="not-needed", max_retries=0)
    classifier = cascade(StubLocal("simple", 0.3), LLMClassifier(llm_client, MODEL))
    with run_triage(gateway_config(sim_control.url), classifier=classifier) as triage:
        async with openai.AsyncOpenAI(base_url=triage.url + "/v1", api_key="unused", max_retries=0) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": "hmm, and the other one?"}]
            )
        # The classifier's connections live on the gateway's loop: close them there, before it stops.
        asyncio.run_coroutine_threadsafe(llm_client.close(), triage.loop).result(5)
    assert raw.headers["x-triage-category"] == "reasoning"
    assert raw.parse().model == "strong"
    assert float(raw.headers["x-triage-confidence"]) == NO_LOGPROBS_CONFIDENCE
    assert sim_control.requests_to(MODEL) == 1
