"""The `llm` classifier: category logprobs (pure), prompt shape, and calls to the simulator over loopback in
instructor's TOOLS and JSON-schema modes."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import openai
import pytest
from harness import SimControl

from triage import ClassifierError, ClassifyInput, ConfigError
from triage.classify._llm import DEFAULT_EXAMPLES, NO_LOGPROBS_CONFIDENCE, LLMClassifier, system_prompt
from triage.classify._logprobs import TokenLogprob, category_scores

# The harness's fixtures, imported by name so pytest finds them here.

CATEGORIES = ("simple", "reasoning", "tool_use")
MODEL = "clf"
FAST = {"ttft_ms": 0, "tokens_per_s": 0}


def tok(token: str, logprob: float, *top: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(token, logprob, ((token, logprob), *top))


# -- logprobs -> scores (pure) ----------------------------------------------------------------------------------


def test_confidence_is_the_joint_probability_of_the_value_and_its_closing_quote() -> None:
    tokens = [tok('{"cate', -0.9), tok('gory": "', -0.9), tok("reason", -0.2), tok("ing", -0.1), tok('"}', -0.05)]
    scores = category_scores(tokens, CATEGORIES, "reasoning")
    assert scores is not None
    # The key's tokens (-0.9 each) do not count: they say nothing about the category.
    assert scores["reasoning"] == pytest.approx(math.exp(-0.35))
    assert sum(scores.values()) == pytest.approx(1.0)


def test_alternatives_at_the_first_value_token_score_other_categories() -> None:
    # The first value token also carries the end of the key (`": "`); alternatives must share that prefix.
    first = tok('": "reason', math.log(0.6), ('": "simple', math.log(0.3)), ('": "tool', math.log(0.05)), (" the", -9))
    tokens = [tok('{"category', 0.0), first, tok('ing"}', 0.0)]
    scores = category_scores(tokens, CATEGORIES, "reasoning")
    assert scores == pytest.approx({"reasoning": 0.6, "simple": 0.3, "tool_use": 0.05})


def test_an_ambiguous_alternative_shares_its_probability() -> None:
    categories = ("code", "code_review", "chat")
    first = tok("code", math.log(0.5), ("co", math.log(0.4)))
    tokens = [tok('{"category": "', 0.0), first, tok('"}', math.log(0.9))]
    scores = category_scores(tokens, categories, "code")
    assert scores is not None
    # "code" needs its closing quote: 0.5 * 0.9. "co" could start either code category.
    assert scores["code"] == pytest.approx(0.45 + 0.2)
    assert scores["code_review"] == pytest.approx(0.2)
    assert scores["chat"] == pytest.approx(1 - 0.85)


def test_tool_call_arguments_are_found_like_content() -> None:
    tokens = [tok('{"', 0.0), tok("category", 0.0), tok('":', 0.0), tok(' "', 0.0), tok("tool", -0.3), tok('_use"}', 0)]
    scores = category_scores(tokens, CATEGORIES, "tool_use")
    assert scores is not None and scores["tool_use"] == pytest.approx(math.exp(-0.3))


def test_an_unlocatable_value_gives_none() -> None:
    assert category_scores([tok("simple", -0.1)], CATEGORIES, "simple") is None
    assert category_scores([], CATEGORIES, "simple") is None
    assert category_scores([tok('{"category": "simple"}', -0.1)], CATEGORIES, "reasoning") is None


# -- prompt -----------------------------------------------------------------------------------------------------


def test_system_prompt_is_under_50_tokens() -> None:
    prompt = system_prompt(CATEGORIES)
    # No tokenizer here: BPE tokenizers give English about 0.75 words or 4 characters per token; take the worse.
    estimate = max(len(prompt.split()) * 4 / 3, len(prompt) / 4) + len(CATEGORIES)  # `tool_use` may split
    assert estimate < 50, (prompt, estimate)


def test_default_examples_cover_the_configured_categories(sim_client: openai.AsyncOpenAI) -> None:
    messages = LLMClassifier(sim_client, MODEL).messages(ClassifyInput("hi"))
    shots = [m["content"] for m in messages[1:-1]]
    assert 3 <= len(shots) // 2 <= 5
    assert {json.loads(str(a))["category"] for a in shots[1::2]} == set(CATEGORIES)
    only_two = LLMClassifier(sim_client, MODEL, categories=("simple", "reasoning")).messages(ClassifyInput("hi"))
    assert len(only_two) == 2 + 2 * sum(1 for _, c in DEFAULT_EXAMPLES if c != "tool_use")


def test_configured_examples_round_robin_over_categories(sim_client: openai.AsyncOpenAI) -> None:
    examples = [(f"s{i}", "simple") for i in range(6)] + [("r0", "reasoning"), ("t0", "tool_use")]
    messages = LLMClassifier(sim_client, MODEL, examples=examples).messages(ClassifyInput("hi"))
    assert [m["content"] for m in messages[1:-1:2]] == ["s0", "r0", "t0", "s1", "s2"]
    with pytest.raises(ConfigError, match=r"examples\.0"):
        LLMClassifier(sim_client, MODEL, examples=[("x", "chit_chat")])


def test_prior_user_turns_are_context_in_the_prompt(sim_client: openai.AsyncOpenAI) -> None:
    request = ClassifyInput("and in Python?", prior_user=("How do I reverse a linked list in C?",), has_tools=True)
    last = str(LLMClassifier(sim_client, MODEL).messages(request)[-1]["content"])
    assert last.index("reverse a linked list in C") < last.index("and in Python?")
    assert "offered tools" in last


# -- against the simulator ----------------------------------------------------------------------------------------


async def test_tools_mode_without_logprobs_uses_the_fixed_confidence(
    sim_client: openai.AsyncOpenAI, sim_control: SimControl
) -> None:
    sim_control.behave(MODEL, tool_arguments={"category": "reasoning"}, **FAST)
    decision = await LLMClassifier(sim_client, MODEL, mode="tools").classify(ClassifyInput("prove it"))
    assert (decision.category, decision.classifier) == ("reasoning", "llm")
    # OpenAI (and the simulator) return no logprobs for tool-call arguments.
    assert decision.confidence == NO_LOGPROBS_CONFIDENCE
    assert sum(decision.scores.values()) == pytest.approx(1.0)
    assert [t.layer for t in decision.layers] == ["llm"] and decision.latency_ms > 0
    sent = sim_control.last_request(MODEL)
    assert sent["tool_choice"]["function"]["name"] == "Route"
    assert sent["tools"][0]["function"]["parameters"]["properties"]["category"]["enum"] == list(CATEGORIES)
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 5)
    assert sent["messages"][0]["role"] == "system"


@pytest.mark.parametrize(("logprob", "low", "high"), [(-0.01, 0.95, 1.0), (-3.0, 0.0, 0.05)])
async def test_json_schema_mode_takes_confidence_from_logprobs(
    sim_client: openai.AsyncOpenAI, sim_control: SimControl, logprob: float, low: float, high: float
) -> None:
    sim_control.behave(MODEL, reply='{"category": "simple"}', logprob=logprob, **FAST)
    decision = await LLMClassifier(sim_client, MODEL, mode="json_schema").classify(ClassifyInput("hello"))
    assert decision.category == "simple"
    assert low <= decision.confidence <= high
    assert decision.confidence == decision.scores["simple"]
    assert sum(decision.scores.values()) == pytest.approx(1.0)
    assert sim_control.last_request(MODEL)["response_format"]["type"] == "json_schema"


async def test_json_schema_mode_without_logprobs(sim_client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave(MODEL, reply='{"category": "tool_use"}', **FAST)
    classifier = LLMClassifier(sim_client, MODEL, mode="json_schema", logprobs=False)
    decision = await classifier.classify(ClassifyInput("book a table"))
    assert (decision.category, decision.confidence) == ("tool_use", NO_LOGPROBS_CONFIDENCE)
    assert "logprobs" not in sim_control.last_request(MODEL)


async def test_json_object_dialect_for_llama_cpp(sim_client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave(MODEL, reply='{"category": "simple"}', **FAST)
    classifier = LLMClassifier(sim_client, MODEL, mode="json_schema", json_schema="json_object")
    assert (await classifier.classify(ClassifyInput("hi"))).category == "simple"
    response_format = sim_control.last_request(MODEL)["response_format"]
    assert response_format["type"] == "json_object"
    assert response_format["schema"]["properties"]["category"]["enum"] == list(CATEGORIES)


async def test_route_descriptions_reach_the_schema(sim_client: openai.AsyncOpenAI, sim_control: SimControl) -> None:
    sim_control.behave(MODEL, tool_arguments={"category": "simple"}, **FAST)
    classifier = LLMClassifier(sim_client, MODEL, descriptions={"simple": "small talk", "reasoning": ""})
    await classifier.classify(ClassifyInput("hi"))
    field = sim_control.last_request(MODEL)["tools"][0]["function"]["parameters"]["properties"]["category"]
    assert field["description"] == "simple: small talk"


@pytest.mark.parametrize(
    "behaviour",
    [
        {"status": 500},  # the provider fails
        {"tool_arguments": {"category": "chit_chat"}},  # an answer outside the categories
        {"tool_arguments": {"label": "simple"}},  # an answer of the wrong shape
    ],
)
async def test_failures_raise_classifier_error_without_retrying(
    sim_client: openai.AsyncOpenAI, sim_control: SimControl, behaviour: dict[str, Any]
) -> None:
    sim_control.behave(MODEL, **behaviour, **FAST)
    with pytest.raises(ClassifierError):
        await LLMClassifier(sim_client, MODEL).classify(ClassifyInput("hi"))
    assert sim_control.requests_to(MODEL) == 1


async def test_timeout_raises_classifier_error_promptly(
    sim_client: openai.AsyncOpenAI, sim_control: SimControl
) -> None:
    # Not much longer than the timeout: the simulator finishes the abandoned answer before the session ends.
    sim_control.behave(MODEL, tool_arguments={"category": "simple"}, ttft_ms=400)
    started = time.perf_counter()
    with pytest.raises(ClassifierError, match=r"within 0\.1s"):
        await LLMClassifier(sim_client, MODEL, timeout=0.1).classify(ClassifyInput("hi"))
    assert time.perf_counter() - started < 0.5
