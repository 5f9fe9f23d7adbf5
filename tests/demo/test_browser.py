"""The demo UI in headless Chromium (Debian's, never a downloaded one), against Triage and the simulator on loopback.

Plain `def` tests with Playwright's sync API: it runs its own event loop, which must not be nested in
pytest-asyncio's. One browser per module; a fresh Triage and a fresh browser context (clean storage) per test.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from harness import SimControl, gateway_config, run_triage
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from triage.classify import DEFAULT_CATEGORIES, ClassifyInput, Decision, LayerTiming
from triage.sim import BackgroundServer
from triage.stream.structured import IncrementalJSONParser, WireDecoder, WireEncoder

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TRIAGE_CHROMIUM", "/usr/bin/chromium")
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
TIMEOUT_MS = 8000

PLAIN_REPLY = (
    "The capital of France is Paris, also its largest city (about 2.1 million people live in the city itself)."
)

STRUCTURED = {
    "title": "Rotate an API key without downtime",
    "summary": "Run the old and the new key side by side, move every client over, then revoke the old one.",
    "steps": [
        "Create a second key with the same roles.",
        "Deploy the new key to every client and service.",
        "Revoke the old key and record the rotation.",
    ],
    "follow_up_questions": ["How often should keys rotate?", "How do I find clients still on the old key?"],
}


class StubClassifier:
    """A learned classifier's look without a model: questions about keys are unclear (low confidence), the rest is
    confidently simple. Makes the demo show both reasons a route can have."""

    name = "local"

    @property
    def categories(self) -> Sequence[str]:
        return DEFAULT_CATEGORIES

    async def classify(self, request: ClassifyInput) -> Decision:
        if "key" in request.last_user:
            scores = {"simple": 0.41, "reasoning": 0.46, "tool_use": 0.13}
        else:
            scores = {"simple": 0.93, "reasoning": 0.05, "tool_use": 0.02}
        category = max(scores, key=scores.__getitem__)
        return Decision(category, scores[category], scores, "local", 0.21, (LayerTiming("local", 0.21),))


# -- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def sim_control(sim_url: str) -> SimControl:
    """The shared simulator (conftest's `sim`), its behaviours cleared for this test."""
    return SimControl(sim_url)


# Uncaught JavaScript errors of each open page (a test fails on any).
PAGE_ERRORS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def posted_json(request: Request) -> dict[str, Any]:
    body = request.post_data_json
    assert isinstance(body, dict), body
    return body


def open_page(browser: Browser, url: str, *, width: int = 1280, height: int = 800) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    PAGE_ERRORS[page] = errors
    page.goto(url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


@pytest.fixture
def page(browser: Browser, triage: BackgroundServer) -> Iterator[Page]:
    page = open_page(browser, triage.url)
    yield page
    errors = PAGE_ERRORS[page]
    page.context.close()
    assert not errors, f"JavaScript errors: {errors}"


def send(page: Page, text: str, *, structured: bool = False) -> None:
    toggle = page.get_by_role("switch", name="Structured")
    if toggle.is_checked() != structured:
        toggle.click()
    box = page.get_by_test_id("composer-input")
    box.fill(text)
    box.press("Enter")


def last_answer(page: Page) -> Any:
    return page.get_by_test_id("answer").last


# -- 1. a plain answer ----------------------------------------------------------------------------------------------


def test_plain_answer_streams_in_with_its_route(page: Page, sim_control: SimControl) -> None:
    sim_control.behave("cheap", reply=PLAIN_REPLY, tokens_per_s=40)
    box = page.get_by_test_id("composer-input")
    box.fill("first line")
    box.press("Shift+Enter")
    expect(box).to_have_value("first line\n")
    assert page.get_by_test_id("answer").count() == 0  # Shift+Enter did not send

    # Keyboard: Tab from the message box reaches the controls, with a visible focus ring.
    box.fill("")
    box.focus()
    page.keyboard.press("Tab")
    toggle = page.get_by_role("switch", name="Structured")
    expect(toggle).to_be_focused()
    ring = page.evaluate("getComputedStyle(document.querySelector('.switch-track')).outlineStyle")
    assert ring != "none"

    send(page, "What is the capital of France?")
    answer = last_answer(page)
    text = answer.get_by_test_id("answer-text")
    # Streaming: part of the text is there while the answer is not done yet.
    page.wait_for_function(
        """(full) => { const a = [...document.querySelectorAll('[data-testid=answer]')].pop();
                       const t = a.querySelector('[data-testid=answer-text]').textContent;
                       return a.dataset.state === 'streaming' && t.length > 0 && t.length < full; }""",
        arg=len(PLAIN_REPLY),
    )
    expect(answer).to_have_attribute("data-state", "done")
    expect(text).to_have_text(PLAIN_REPLY)
    assert answer.get_by_test_id("answer-body").get_attribute("aria-live") == "polite"

    badge = answer.get_by_test_id("route-badge")
    expect(badge.get_by_test_id("route-category")).to_have_text("simple")
    expect(badge.get_by_test_id("route-model")).to_have_text("cheap")
    expect(badge.get_by_test_id("route-confidence")).to_contain_text("100%")
    expect(badge.get_by_test_id("route-reason")).to_have_text("rule match")
    expect(badge.get_by_test_id("route-classifier")).to_contain_text("rules ·")
    expect(badge.get_by_test_id("route-classifier")).to_contain_text("ms")
    expect(badge.get_by_test_id("route-speculation")).to_have_text("speculation off")

    usage = answer.get_by_test_id("usage")
    expect(usage.get_by_test_id("usage-saved")).to_contain_text("saved $0.")
    expect(usage.get_by_test_id("usage-tokens")).to_contain_text("tokens")
    expect(page.get_by_test_id("session-total")).to_contain_text("all-strong")

    # The next turn carries the conversation so far.
    sim_control.behave("cheap", reply="About 2.1 million.")
    with page.expect_request(lambda r: r.url.endswith("/v1/triage/chat")) as sent:
        send(page, "And its population?")
    body = posted_json(sent.value)
    assert body["model"] == "auto" and "structured" not in body
    assert body["messages"] == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": PLAIN_REPLY},
        {"role": "user", "content": "And its population?"},
    ]
    expect(last_answer(page)).to_have_attribute("data-state", "done")


# -- 2. a structured answer -----------------------------------------------------------------------------------------


def test_structured_fields_fill_in_live_and_end_equal_to_the_json(page: Page, sim_control: SimControl) -> None:
    sim_control.behave("cheap", reply=json.dumps(STRUCTURED), tokens_per_s=40)
    with page.expect_request(lambda r: r.url.endswith("/v1/triage/chat")) as sent:
        send(page, "What is the capital of France?", structured=True)
    assert posted_json(sent.value)["structured"] is True
    answer = last_answer(page)
    # The title is on screen while the stream is still going.
    page.wait_for_function(
        """() => { const a = [...document.querySelectorAll('[data-testid=answer]')].pop();
                   const t = a.querySelector('[data-testid=structured-title]');
                   return t !== null && t.textContent.length > 0 && a.dataset.state === 'streaming'; }"""
    )
    assert answer.get_attribute("data-state") == "streaming"
    assert answer.get_by_test_id("field-follow_up_questions").count() == 0  # later fields are still to come

    expect(answer).to_have_attribute("data-state", "done")
    card = answer.get_by_test_id("structured-card")
    expect(card.get_by_test_id("structured-title")).to_have_text(STRUCTURED["title"])
    expect(card.get_by_test_id("field-summary").locator("p")).to_have_text(STRUCTURED["summary"])
    expect(card.get_by_test_id("field-steps").locator("li")).to_have_text(STRUCTURED["steps"])
    expect(card.get_by_test_id("field-follow_up_questions").locator("li")).to_have_text(
        STRUCTURED["follow_up_questions"]
    )
    assert json.loads(card.get_by_test_id("structured-json").text_content() or "") == STRUCTURED
    assert card.get_attribute("data-complete") == "true"

    # A follow-up question is one click (or Enter) away from the composer.
    card.get_by_role("button", name=STRUCTURED["follow_up_questions"][0]).click()
    expect(page.get_by_test_id("composer-input")).to_have_value(STRUCTURED["follow_up_questions"][0])


# -- 3. errors and stops --------------------------------------------------------------------------------------------


def test_upstream_cut_shows_the_error(page: Page, sim_control: SimControl) -> None:
    sim_control.behave("cheap", cut_after=3, tokens_per_s=0)
    send(page, "What is the capital of France?")
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-state", "error")
    error = answer.get_by_test_id("answer-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Error:")
    assert len((error.text_content() or "").strip()) > len("Error:") + 5
    expect(answer.get_by_test_id("answer-status")).to_contain_text("you can retry")
    expect(answer.get_by_test_id("route-model")).to_have_text("cheap")  # the route came before the cut
    # The next question goes out as usual; the failed answer is not part of the history.
    sim_control.behave("cheap", reply="Paris.")
    with page.expect_request(lambda r: r.url.endswith("/v1/triage/chat")) as sent:
        send(page, "Again?")
    assert [m["role"] for m in posted_json(sent.value)["messages"]] == ["user", "user"]
    expect(last_answer(page)).to_have_attribute("data-state", "done")


def test_http_error_answer_shows_its_message(page: Page, sim_control: SimControl) -> None:
    for model in ("cheap", "backup"):
        sim_control.behave(model, status=400)
    with page.expect_response(lambda r: r.url.endswith("/v1/triage/chat")) as answered:
        send(page, "What is the capital of France?")
    response = answered.value
    assert response.status >= 400
    message = response.json()["error"]["message"]
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-state", "error")
    expect(answer.get_by_test_id("answer-error")).to_contain_text(message)
    expect(answer.get_by_test_id("answer-status")).to_contain_text(f"HTTP {response.status}")


def test_stream_without_done_or_error_shows_stopped(page: Page) -> None:
    route = {"request_id": "req_x", "category": "simple", "confidence": 0.9, "scores": {}, "model": "cheap",
             "reason": "confident", "classifier": "local", "classify_ms": 0.2, "speculation": "off"}
    body = ("event: route\ndata: " + json.dumps(route) + "\n\n: ping\n\nevent: delta\r\ndata: {\"text\": \"Half an\"}"
            "\r\n\r\nevent: delta\ndata: {\"text\": \" answer\"}\n\n")
    page.route("**/v1/triage/chat", lambda r: r.fulfill(status=200, body=body, content_type="text/event-stream"))
    send(page, "Anything")
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-state", "stopped")
    expect(answer.get_by_test_id("answer-text")).to_have_text("Half an answer")
    expect(answer.get_by_test_id("answer-status")).to_contain_text("Stopped")
    expect(answer.get_by_test_id("answer-error")).to_contain_text("without a done or error event")


def test_stop_button_ends_the_answer_as_stopped(page: Page, sim_control: SimControl) -> None:
    sim_control.behave("cheap", reply=PLAIN_REPLY, tokens_per_s=10)
    send(page, "What is the capital of France?")
    answer = last_answer(page)
    expect(answer.get_by_test_id("answer-text")).not_to_have_text("")
    page.get_by_test_id("stop").click()
    expect(answer).to_have_attribute("data-state", "stopped")
    expect(answer.get_by_test_id("answer-error")).to_contain_text("you stopped this answer")
    expect(page.get_by_test_id("stop")).to_be_hidden()
    expect(page.get_by_test_id("send")).to_be_enabled()


# -- 4. correcting a route ----------------------------------------------------------------------------------------


def test_correcting_a_route_posts_feedback(page: Page) -> None:
    with page.expect_response(lambda r: r.url.endswith("/v1/triage/chat")) as chat:
        send(page, "What is the capital of France?")
    request_id = chat.value.headers["x-triage-request-id"]
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-state", "done")
    feedback = answer.get_by_test_id("feedback")
    expect(feedback.get_by_role("button")).to_have_count(len(DEFAULT_CATEGORIES))
    button = feedback.get_by_role("button", name="should have been reasoning")
    expect(button).to_have_attribute("data-testid", "correct-reasoning")
    expect(feedback.get_by_role("button", name="simple was right")).to_be_visible()

    button.focus()  # keyboard: a focused correction button works with Enter
    with page.expect_response(lambda r: r.url.endswith("/v1/feedback")) as answered:
        page.keyboard.press("Enter")
    response = answered.value
    assert response.request.method == "POST"
    assert posted_json(response.request) == {"request_id": request_id, "category": "reasoning"}
    result = feedback.get_by_test_id("feedback-result")
    if response.ok:
        expect(result).to_contain_text("recorded: should have been reasoning")
    else:
        # The endpoint may be missing or refuse: the UI says why, in the server's words.
        expect(result).to_contain_text("Feedback not saved")
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status}"
        expect(result).to_contain_text(message)


# -- 5. the demo's screenshot and the phone layout ------------------------------------------------------------------


def test_demo_screenshot_and_phone_layout(browser: Browser, sim_control: SimControl) -> None:
    sim_control.behave("cheap", reply=PLAIN_REPLY, tokens_per_s=0)
    sim_control.behave("strong", reply=json.dumps(STRUCTURED), tokens_per_s=0)
    with run_triage(gateway_config(sim_control.url), classifier=StubClassifier()) as server:
        page = open_page(browser, server.url)
        try:
            send(page, "What is the capital of France?")
            expect(last_answer(page)).to_have_attribute("data-state", "done")
            send(page, "How do I rotate an API key without downtime?", structured=True)
            answer = last_answer(page)
            expect(answer).to_have_attribute("data-state", "done")
            expect(answer.get_by_test_id("route-reason")).to_have_text("low confidence → strongest")
            expect(answer.get_by_test_id("route-model")).to_have_text("strong")
            page.get_by_test_id("composer-input").blur()
            page.evaluate("document.getElementById('conversation').scrollTop = 1e6")
            page.wait_for_timeout(150)  # the smooth scroll
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))

            page.set_viewport_size({"width": 360, "height": 740})
            no_overflow = """() => [document.documentElement, document.body,
                                    ...document.querySelectorAll('main, .panel, .conversation')]
                .every((el) => el.scrollWidth <= el.clientWidth)"""
            assert page.evaluate(no_overflow)
            page.get_by_test_id("tab-stats").click()
            expect(page.get_by_test_id("session-requests")).to_contain_text("2")
            expect(page.get_by_test_id("server-stats-status")).not_to_have_text("Loading…")
            expect(page.get_by_test_id("session-cost-chart").locator("svg polyline")).to_have_count(2)
            assert page.evaluate(no_overflow)
            assert not PAGE_ERRORS[page]
        finally:
            page.context.close()


def test_stats_view_without_the_endpoint_says_unavailable(page: Page) -> None:
    page.route("**/v1/stats*", lambda r: r.fulfill(status=404, json={"error": {"message": "Not Found"}}))
    page.get_by_test_id("tab-stats").click()
    expect(page.get_by_test_id("server-stats-status")).to_contain_text("stats unavailable")
    expect(page.get_by_test_id("session-stats")).to_contain_text("Ask something")


def test_stats_view_draws_the_servers_numbers(page: Page) -> None:
    stats = {
        "object": "triage.stats", "bucket": "hour",
        "totals": {"requests": 12, "cost_usd": 0.002, "baseline_cost_usd": 0.02, "saved_usd": 0.018,
                   "categories": {"simple": 8, "reasoning": 3, "tool_use": 1}, "models": {"cheap": 9, "strong": 3},
                   "corrections": 2, "agreement": 0.5},
        "buckets": [{"start": 1_700_000_000 + 3600 * i, "requests": 4, "cost_usd": 0.001 * i,
                     "baseline_cost_usd": 0.006 * i} for i in range(3)],
    }
    page.route("**/v1/stats*", lambda r: r.fulfill(status=200, json=stats))
    page.get_by_test_id("tab-stats").click()
    server = page.get_by_test_id("server-stats")
    expect(server.get_by_test_id("server-requests")).to_contain_text("12")
    expect(server.get_by_test_id("server-saved")).to_contain_text("90%")
    expect(server.get_by_test_id("server-route-mix").locator("rect.bar")).to_have_count(3)
    expect(server.get_by_test_id("server-models").locator("rect.bar")).to_have_count(2)
    expect(server.get_by_test_id("server-cost-chart").locator("circle")).to_have_count(6)


# -- the two small parsers, against the Python reference --------------------------------------------------------------


def test_sse_parser_survives_any_chunk_split(page: Page) -> None:
    text = ("\ufeff: ping\r\n\r\nevent: route\r\ndata: {\"a\": 1}\r\n\r\nevent: delta\ndata: {\"text\":\n"
            "data: \"é€😀\"}\n\n:comment\nevent: x\rdata:no-space\r\rdata\n\nevent: cut\ndata: 1")
    result = page.evaluate(
        """async (text) => {
            const { SSEParser } = await import('/sse.js');
            const bytes = new TextEncoder().encode(text);
            const runs = [];
            for (let cut = 0; cut <= bytes.length; cut++) {
                const parser = new SSEParser(), decoder = new TextDecoder();
                const events = [...parser.feed(decoder.decode(bytes.slice(0, cut), {stream: true})),
                                ...parser.feed(''),
                                ...parser.feed(decoder.decode(bytes.slice(cut), {stream: true})),
                                ...parser.feed(decoder.decode())];
                runs.push(JSON.stringify(events.map((e) => [e.event, e.data])));
            }
            return [...new Set(runs)];
        }""",
        text,
    )
    assert len(result) == 1
    assert json.loads(result[0]) == [
        ["route", '{"a": 1}'], ["delta", '{"text":\n"é€😀"}'], ["x", "no-space"], ["message", ""],
    ]


def test_patch_applier_matches_the_python_reference(page: Page) -> None:
    texts = [
        json.dumps(STRUCTURED),
        json.dumps({"a/b": {"c~d": [1, 2.5, -3e2, True, False, None]}, "-": "dash", "": [[], {}], "x": "1é\\\"\n😀"}),
        '[{"k": "v"}, "s", 0, {"__proto__": {"polluted": 1}}]',
        '"just a string"',
        '{"title": "twice", "title": "again", "n": -0.5e-3}',
    ]
    for text in texts:
        parser = IncrementalJSONParser()
        patches: list[Any] = []
        for i in range(0, len(text), 3):
            patches.extend(parser.feed(text[i:i + 3]))
        patches.extend(parser.finish())
        replayed = page.evaluate(
            """async (patches) => {
                const { applyPatch } = await import('/jsonpatch.js');
                let doc = {};
                for (const p of patches) { const before = JSON.stringify(doc); const next = applyPatch(doc, p);
                    if (JSON.stringify(doc) !== before) throw new Error('applyPatch modified its input');
                    doc = next; }
                return JSON.stringify(doc);
            }""",
            patches,
        )
        assert json.loads(replayed) == json.loads(text)
    errors = page.evaluate(
        """async () => {
            const { applyPatch } = await import('/jsonpatch.js');
            const bad = [[{}, {op: 'append', path: '/nope', value: 'x'}],
                         [{a: []}, {op: 'add', path: '/a/01', value: 1}],
                         [{a: 1}, {op: 'append', path: '/a', value: 'x'}], [{}, {op: 'add', path: 'a', value: 1}],
                         [{a: []}, {op: 'done', path: '/a/0'}], [{}, {op: 'move', path: ''}]];
            return bad.map(([doc, patch]) => { try { applyPatch(doc, patch); return null; }
                                               catch (e) { return e.name; } });
        }"""
    )
    assert errors == ["PatchError"] * 6


def test_wire_decoder_matches_the_python_reference(page: Page) -> None:
    """The browser's WireDecoder turns each `patch` event's data into exactly the patches the Python reference
    decoder gives, and those replay to the document (issue 18)."""
    texts = [
        json.dumps(STRUCTURED),
        json.dumps({"a/b": {"c~d": [1, 2.5, -3e2, True, False, None, 10**22]}, "-": "dash", "": [[], {}],
                    "x": "1é\\\"\n😀\ud83d\ude00"}, ensure_ascii=True),
        '[{"k": "v"}, "s", 0, [[[]]], {"__proto__": {"polluted": 1}}]',
        '"just a string"',
        "42",
        "{}",
        '{"title": "twice", "title": "again", "n": -0.5e-3}',
    ]
    for text in texts:
        for size in (1, 4, 16):
            parser, encoder = IncrementalJSONParser(), WireEncoder()
            events: list[Any] = []
            for i in range(0, len(text), size):
                data = encoder.encode(parser.feed(text[i:i + size]))
                if data:
                    events.append(json.loads(data))
            tail = encoder.encode(parser.finish())
            if tail:
                events.append(json.loads(tail))
            decoder = WireDecoder()
            expected = [[p for p in decoder.decode(e)] for e in events]
            decoded, replayed = page.evaluate(
                """async (events) => {
                    const { WireDecoder, applyPatch } = await import('/jsonpatch.js');
                    const decoder = new WireDecoder();
                    const decoded = events.map((e) => decoder.decode(e));
                    let doc = {};
                    for (const p of decoded.flat()) doc = applyPatch(doc, p);
                    return [decoded, JSON.stringify(doc)];
                }""",
                events,
            )
            assert decoded == expected, (text, size)
            assert json.loads(replayed) == json.loads(text)
    errors = page.evaluate(
        """async () => {
            const { WireDecoder } = await import('/jsonpatch.js');
            const bad = [['"x"'], ['2'], ['0'], ['true'], ['[[1, 2, 3]]'], ['[1, ["k", 1]]'], ['{}'],
                         ['[["k", {}]]', '[["x"]]']];
            return bad.map((events) => { const d = new WireDecoder();
                try { for (const e of events) d.decode(JSON.parse(e)); return null; } catch (e) { return e.name; } });
        }"""
    )
    assert errors == ["PatchError"] * 8
