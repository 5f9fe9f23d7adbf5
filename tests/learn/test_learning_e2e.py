"""The learning loop through the running gateway: each answer is recorded, a reviewer corrects one, stats agree."""

from __future__ import annotations

import httpx
import pytest
from harness import SimControl, gateway_config, run_triage

from triage.app import hash_key

CLIENT, REVIEWER = "tk-client-abcdef", "tk-reviewer-abcdef"


async def test_answers_are_recorded_corrected_and_counted(sim_control: SimControl) -> None:
    config = gateway_config(sim_control.url, auth={"keys": [
        {"id": "app", "sha256": hash_key(CLIENT)},
        {"id": "qa", "sha256": hash_key(REVIEWER), "role": "reviewer"},
    ]})
    with run_triage(config) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            client = {"authorization": f"Bearer {CLIENT}"}
            reviewer = {"authorization": f"Bearer {REVIEWER}"}
            ids = []
            for text, stream in [("capital of France?", False), ("write a python function to add", True),
                                 ("hello there", True)]:
                body = {"model": "auto", "messages": [{"role": "user", "content": text}], "stream": stream}
                response = await http.post("/v1/chat/completions", json=body, headers=client)
                assert response.status_code == 200
                ids.append(response.headers["x-triage-request-id"])
            # A client key may not correct the router; a reviewer may.
            correction = {"request_id": ids[0], "category": "reasoning", "note": "multi-step"}
            assert (await http.post("/v1/feedback", json=correction, headers=client)).status_code == 403
            accepted = await http.post("/v1/feedback", json=correction, headers=reviewer)
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["router_category"] == "simple" and accepted.json()["agrees"] is False
            missing = await http.post("/v1/feedback", json={**correction, "request_id": "req_nope"}, headers=reviewer)
            assert missing.status_code == 404
            wrong = await http.post("/v1/feedback", json={**correction, "category": "poetry"}, headers=reviewer)
            assert wrong.status_code == 400
            stats = (await http.get("/v1/stats", headers=reviewer)).json()
    totals = stats["totals"]
    assert totals["requests"] == 3
    assert totals["categories"] == {"simple": 2, "reasoning": 1}
    assert totals["corrections"] == 1 and totals["agreement"] == pytest.approx(0.0)
    assert totals["baseline_cost_usd"] > totals["cost_usd"] > 0
    assert totals["saved_usd"] == pytest.approx(totals["baseline_cost_usd"] - totals["cost_usd"])
