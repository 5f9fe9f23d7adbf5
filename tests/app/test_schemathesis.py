"""Schemathesis against Triage on the simulator: generated requests, valid and invalid, to every operation of
`GET /openapi.json`. No answer is a 5xx, every error is in OpenAI's shape, and every response (status, media
type, headers, body, each SSE event of both dialects) conforms to the document.

Triage runs as a real uvicorn server with a client, a reviewer and an admin key and its SQLite store; the simulator
answers at once (no time to first token, no pacing), so the run is bound by generating cases, not by waiting.
schemathesis's `from_fixture` (a schema loaded inside a fixture) fails on pytest 9 (it sets `node._nodeid`), so
the schema is loaded at import from `openapi_document` and `test_the_served_document_is_this_one` ties it to the
route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from harness import gateway_config
from requests.structures import CaseInsensitiveDict
from schemathesis.specs.openapi.checks import positive_data_acceptance

from triage._config import TriageConfig
from triage.app import HeadWithBodyProtocol, create_app, hash_key
from triage.app._openapi import openapi_document
from triage.sim import BackgroundServer, SimBehaviour, SimConfig, create_sim_app

KEYS = {
    "client": "tk-fuzz-client-0123456789",
    "reviewer": "tk-fuzz-reviewer-0123456789",
    "admin": "tk-fuzz-admin-0123456789",
}
# Hypothesis examples per operation and generation mode. The request bodies draw most of them; operations without
# parameters run out of distinct inputs at once. Measured here: ~1,600 cases in ~30 s on 2 cores.
EXAMPLES = 150
MIN_CASES = 1000

calls: list[str] = []


def fuzz_config(sim_url: str, store: Path) -> TriageConfig:
    data = gateway_config(sim_url).model_dump(mode="json")
    # Only models the simulator serves: the harness's `offline` model fails on purpose (502/504, test_fallback.py).
    del data["providers"]["down"], data["models"]["offline"]
    data["auth"] = {"keys": [{"id": role, "sha256": hash_key(key), "role": role} for role, key in KEYS.items()]}
    data["store"] = {"path": str(store)}
    return TriageConfig(**data)


# The document depends on the config's models, routes and keys, not on where the simulator listens.
DOCUMENT = openapi_document(fuzz_config("http://127.0.0.1:9", Path("unused.db")))
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict({"generation": {"mode": "all"}}))


@schema.auth(cache_by_key=lambda case, ctx: ctx.operation.path)
class Keys:
    """The least role each operation needs; schemathesis's `ignored_auth` then checks that none works without."""

    def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> str:
        if ctx.operation.path.startswith("/v1/admin/"):
            return KEYS["admin"]
        if ctx.operation.path.startswith(("/v1/feedback", "/v1/stats")):
            return KEYS["reviewer"]
        return KEYS["client"]

    def set(self, case: schemathesis.Case[Any], data: str, ctx: schemathesis.AuthContext) -> None:
        if case.headers is None:
            case.headers = CaseInsensitiveDict()
        case.headers["Authorization"] = f"Bearer {data}"


@pytest.fixture(scope="module")
def triage_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    sim = SimConfig(default=SimBehaviour(ttft_ms=0, tokens_per_s=0, completion_tokens=6))
    store = tmp_path_factory.mktemp("fuzz") / "triage.db"
    with BackgroundServer(create_sim_app(sim)) as sim_server, \
            BackgroundServer(create_app(fuzz_config(sim_server.url, store), ui=False),
                             http=HeadWithBodyProtocol) as triage:
        yield triage.url


def openai_error_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every error is `{"error": {"message", "type", "param", "code"}}` as JSON, never a traceback."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/json"), f"error with content-type {content_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, f"not OpenAI's error shape: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert "Traceback" not in response.content.decode("utf-8", "replace")
    return None


# Schema-valid requests Triage refuses for reasons no JSON schema of the request can state, as (operation, status,
# error code). Any other refusal of a valid request is a failure, except 401/403/404/409/429 (schemathesis's own
# `positive_data_acceptance` allows those too: they depend on keys and stored state, not on the request's shape).
SEMANTIC_REFUSALS = {
    # The JSON Schema inside the request is not a valid JSON Schema (checked before any model is asked).
    ("POST /v1/chat/completions", 422, None),
    ("POST /v1/triage/chat", 422, None),
    # The provider refused a field Triage passes through as sent (e.g. `response_format.type: json_schema` with
    # `json_schema: null`); Triage cannot know every provider's rules, and says who refused.
    ("POST /v1/chat/completions", 400, "upstream_400"),
    ("POST /v1/triage/chat", 400, "upstream_400"),
    # An empty window: `since` at or after `until`.
    ("GET /v1/stats", 400, "invalid_value"),
    # classifier.kind is rules: there is no head to reload.
    ("POST /v1/admin/reload", 400, "no_head"),
}


def valid_requests_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """schemathesis's `positive_data_acceptance`, less SEMANTIC_REFUSALS."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code < 400:
        return None
    if response.status_code in (401, 403, 404, 409, 429):
        return None
    code = json.loads(response.content)["error"]["code"]
    assert (case.operation.label, response.status_code, code) in SEMANTIC_REFUSALS, (
        f"schema-valid request refused: {response.status_code} {response.content[:300]!r}"
    )
    return None


CHECKS: list[schemathesis.CheckFunction] = [openai_error_shape, valid_requests_accepted]
EXCLUDED: list[schemathesis.CheckFunction] = [
    positive_data_acceptance,  # replaced by valid_requests_accepted
]


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is a regression, not bad luck
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case[Any], triage_url: str) -> None:
    calls.append(case.operation.label)
    case.call_and_validate(base_url=triage_url, additional_checks=CHECKS, excluded_checks=EXCLUDED, timeout=10)


def test_the_served_document_is_this_one(triage_url: str) -> None:
    assert httpx.get(triage_url + "/openapi.json").json() == DOCUMENT


def test_enough_cases_ran() -> None:
    if not calls:
        pytest.skip("counts the cases of test_every_operation_conforms, which did not run")
    per_operation = {label: calls.count(label) for label in sorted(set(calls))}
    assert len(calls) >= MIN_CASES, per_operation
    assert len(per_operation) == len([op for path in DOCUMENT["paths"].values() for op in path]), per_operation
