from __future__ import annotations

import itertools

import pytest

from triage import Decision, TriageConfig
from triage.route import plan_route


def make_config(**overrides: object) -> TriageConfig:
    data: dict[str, object] = {
        "providers": {"p": {"base_url": "http://127.0.0.1:1/v1"}},
        "models": {
            "cheap": {"provider": "p", "upstream_id": "c", "input_per_mtok": 0.1, "output_per_mtok": 0.4},
            "strong": {"provider": "p", "upstream_id": "s", "input_per_mtok": 2.5, "output_per_mtok": 10},
            "notools": {"provider": "p", "upstream_id": "n", "capabilities": ["json"]},
        },
        "routes": {
            "simple": {"models": ["cheap", "strong"]},
            "reasoning": {"models": ["strong"]},
            "tool_use": {"models": ["notools", "cheap"]},
        },
        "classifier": {"threshold": 0.6},
    }
    data.update(overrides)
    return TriageConfig(**data)  # type: ignore[arg-type]


def decision(category: str, confidence: float, classifier: str = "local") -> Decision:
    return Decision(category, confidence, {category: confidence}, classifier, 0.1)


def test_confident_decision_takes_the_category_chain() -> None:
    plan = plan_route(decision("simple", 0.9), make_config())
    assert plan.models == ("cheap", "strong")
    assert plan.reason == "confident"
    assert plan.category == "simple"


def test_low_confidence_puts_the_strongest_model_first() -> None:
    plan = plan_route(decision("simple", 0.59), make_config())
    assert plan.models == ("strong", "cheap")
    assert plan.reason == "low_confidence"


def test_rules_decisions_say_so() -> None:
    assert plan_route(decision("reasoning", 1.0, "rules"), make_config()).reason == "rule"


def test_forced_model_bypasses_routing() -> None:
    plan = plan_route(None, make_config(), forced_model="notools")
    assert plan == plan.__class__(None, ("notools",), "forced")


def test_tools_never_go_to_a_model_without_tools() -> None:
    config = make_config()
    for category, confidence in itertools.product(config.categories, (0.1, 0.9)):
        plan = plan_route(decision(category, confidence), config, needs=("tools",))
        assert "notools" not in plan.models
        assert plan.models


def test_a_chain_with_no_capable_model_borrows_the_cheapest_capable_one() -> None:
    config = make_config(routes={"simple": {"models": ["notools"]}})
    assert plan_route(decision("simple", 0.9), config, needs=("tools",)).models == ("cheap", "strong")


def test_strongest_defaults_to_the_priciest_model() -> None:
    assert make_config().strongest_model == "strong"
    assert make_config(strongest="cheap").strongest_model == "cheap"


@pytest.mark.parametrize("confidence", [0.0, 0.3, 0.6, 0.61, 1.0])
def test_every_plan_is_non_empty_and_known(confidence: float) -> None:
    config = make_config()
    for category in config.categories:
        plan = plan_route(decision(category, confidence), config)
        assert plan.models and set(plan.models) <= set(config.models)


def test_llm_decisions_are_held_to_the_llm_threshold() -> None:
    config = make_config(
        classifier={"threshold": 0.5, "llm": {"model": "cheap", "threshold": 0.8}}
    )
    assert plan_route(decision("simple", 0.7, "llm"), config).reason == "low_confidence"
    assert plan_route(decision("simple", 0.7, "local"), config).reason == "confident"


def test_each_category_can_hold_its_own_bar() -> None:
    """A decision for the cheap route is the costly one to get wrong, so it may need more confidence (issue 16)."""
    config = make_config(classifier={"threshold": 0.4, "thresholds": {"simple": 0.8}})
    assert plan_route(decision("simple", 0.75), config).reason == "low_confidence"
    assert plan_route(decision("reasoning", 0.45), config).reason == "confident"
    assert plan_route(decision("reasoning", 0.35), config).reason == "low_confidence"
    assert plan_route(decision("simple", 0.85), config).models == ("cheap", "strong")


def test_a_bar_for_an_unknown_route_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"classifier.thresholds.chitchat: no route named 'chitchat'"):
        make_config(classifier={"thresholds": {"chitchat": 0.5}})
    with pytest.raises(ValueError, match="between 0 and 1"):
        make_config(classifier={"thresholds": {"simple": 1.5}})
