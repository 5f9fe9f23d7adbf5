// Triage's demo UI: a chat over the UI event stream (POST /v1/triage/chat), with each answer's route, cost and a
// way to correct the route; and a stats view (stats.js). No framework, no build step.

import { readSSE } from "./sse.js";
import { h } from "./dom.js";
import { StructuredCard } from "./structured.js";
import { int, ms, percent, usd } from "./format.js";
import { session, initStats } from "./stats.js";

const DEFAULT_CATEGORIES = ["simple", "reasoning", "tool_use"];
const REASONS = {
  confident: "confident",
  low_confidence: "low confidence → strongest",
  rule: "rule match",
  forced: "model chosen by client",
};
const KEY_STORAGE = "triage.apiKey";

const $ = (selector, root = document) => root.querySelector(selector);

// -- the server ------------------------------------------------------------------------------------------------

export function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** The message of an error answer: OpenAI's {"error": {"message"}} shape, else the status line. */
export async function errorMessage(response) {
  let text = "";
  try {
    text = await response.text();
    const body = JSON.parse(text);
    const message = body?.error?.message ?? body?.detail ?? body?.message;
    if (typeof message === "string" && message) return message;
  } catch {
    // not JSON: fall through to the status line
  }
  const status = `HTTP ${response.status}${response.statusText ? " " + response.statusText : ""}`;
  return text && text.length < 200 && !text.trimStart().startsWith("<") ? `${status}: ${text}` : status;
}

// -- the conversation ---------------------------------------------------------------------------------------------

const conversation = $("#conversation");
const input = $("#composer-input");
const form = $("#composer");
const sendButton = $('[data-testid="send"]');
const stopButton = $('[data-testid="stop"]');
const structuredToggle = $('[data-testid="structured-toggle"]');
const modelSelect = $('[data-testid="model-select"]');
const history = []; // the messages sent with each turn: {role, content}
let active = null; // the AbortController of the answer being streamed

function nearBottom() {
  return conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 120;
}

function scrollDown(force = false) {
  if (force || nearBottom()) conversation.scrollTop = conversation.scrollHeight;
}

function addUserTurn(text) {
  $('[data-testid="empty-state"]')?.remove();
  conversation.append(
    h("article", { class: "turn user", "data-testid": "user-message" }, h("div", { class: "bubble" }, text)),
  );
}

function categoryClass(category) {
  return DEFAULT_CATEGORIES.includes(category) ? `cat-${category}` : "cat-other";
}

/** One answer: its route badge, body, status, usage and correction buttons. */
class Answer {
  constructor({ structured }) {
    this.structured = structured;
    this.text = document.createTextNode("");
    this.route = null;
    this.usage = null;
    this.tools = new Map(); // index -> {id, name, arguments, node}
    this.state = "routing";
    this.badge = h("div", { class: "route-badge pending", "data-testid": "route-badge" }, h("span", { class: "chip" }, "routing…"));
    this.body = h("div", {
      class: "answer-body",
      "data-testid": "answer-body",
      "aria-live": "polite",
      "aria-busy": "true",
    });
    if (structured) {
      this.card = new StructuredCard((question) => {
        input.value = question;
        input.focus();
        autosize();
      });
      this.body.append(this.card.node);
    } else {
      this.body.append(h("div", { class: "answer-text", "data-testid": "answer-text" }, this.text));
    }
    this.status = h("div", { class: "answer-status", "data-testid": "answer-status", role: "status" });
    this.error = h("div", { class: "answer-error", "data-testid": "answer-error", role: "alert", hidden: true });
    this.usageNode = h("div", { class: "usage", "data-testid": "usage", hidden: true });
    this.feedback = h("div", { class: "feedback", "data-testid": "feedback", role: "group", "aria-label": "Correct the route", hidden: true });
    this.node = h(
      "article",
      { class: "turn assistant", "data-testid": "answer", "aria-label": "Answer" },
      this.badge,
      this.body,
      this.error,
      this.status,
      h("footer", { class: "answer-foot" }, this.usageNode, this.feedback),
    );
    this.setState("routing");
  }

  setState(state, message) {
    this.state = state;
    this.node.dataset.state = state;
    this.body.setAttribute("aria-busy", String(state === "routing" || state === "streaming"));
    const labels = {
      routing: "Routing…",
      streaming: "Streaming…",
      done: "Done",
      error: "Failed",
      stopped: "Stopped",
    };
    this.status.dataset.state = state;
    this.status.textContent = message ? `${labels[state]} — ${message}` : labels[state];
  }

  showRoute(route) {
    this.route = route;
    this.node.dataset.requestId = route.request_id ?? "";
    const category = route.category ?? "forced";
    const confidence = typeof route.confidence === "number" ? route.confidence : null;
    const pct = confidence === null ? null : Math.round(Math.max(0, Math.min(1, confidence)) * 100);
    const reason = route.reason ?? "";
    const scores = route.scores && typeof route.scores === "object" ? Object.entries(route.scores) : [];
    const layers = route.layers && typeof route.layers === "object" ? Object.entries(route.layers) : [];
    const meter = h(
      "span",
      { class: "meter", role: "meter", "aria-label": "confidence", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct ?? 0 },
      h("span", { class: "meter-fill", style: `width:${pct ?? 0}%` }),
    );
    const confidenceAttrs = { class: "chip confidence", "data-testid": "route-confidence", "data-value": confidence ?? "" };
    const pctText = pct === null ? "—" : `${pct}%`;
    // With per-category scores, the confidence chip opens them (a popover, so the layout does not move).
    const confidenceChip = scores.length
      ? h(
          "details",
          { class: "scores" },
          h("summary", { ...confidenceAttrs, title: "classifier confidence: show every category's score" }, meter, pctText),
          h(
            "ul",
            { "data-testid": "route-scores" },
            ...[...scores]
              .sort((a, b) => b[1] - a[1])
              .map(([name, score]) =>
                h("li", {}, h("span", { class: "score-name" }, name),
                  h("span", { class: "meter small" }, h("span", { class: "meter-fill", style: `width:${Math.round(score * 100)}%` })),
                  h("span", { class: "score-value" }, Number(score).toFixed(2))),
              ),
          ),
        )
      : h("span", { ...confidenceAttrs, title: "classifier confidence" }, meter, pctText);
    const chips = [
      h("span", { class: `chip category ${categoryClass(category)}`, "data-testid": "route-category", title: "category" }, category),
      h("span", { class: "chip model", "data-testid": "route-model", title: "model that answered" }, route.model ?? "?"),
      confidenceChip,
      reason
        ? h("span", { class: `chip reason reason-${reason}`, "data-testid": "route-reason", title: "why this model" }, REASONS[reason] ?? reason)
        : null,
      route.planned_model && route.model && route.planned_model !== route.model
        ? h("span", { class: "chip fallback", "data-testid": "route-fallback" }, `fell back from ${route.planned_model}`)
        : null,
      h(
        "span",
        {
          class: "chip classifier",
          "data-testid": "route-classifier",
          title: layers.length ? "layers: " + layers.map(([k, v]) => `${k} ${ms(v)}`).join(", ") : "classifier",
        },
        `${route.classifier ?? "no classifier"} · ${ms(route.classify_ms)}`,
      ),
      h(
        "span",
        { class: `chip speculation spec-${route.speculation ?? "off"}`, "data-testid": "route-speculation", title: "speculative cheap-model stream" },
        `speculation ${route.speculation ?? "off"}`,
      ),
    ];
    this.badge.className = `route-badge ${reason === "low_confidence" ? "low" : ""}`;
    this.badge.replaceChildren(...chips.filter(Boolean));
    if (route.request_id) this.showFeedback(scores.length ? scores.map(([name]) => name) : DEFAULT_CATEGORIES);
  }

  showFeedback(categories) {
    const result = h("span", { class: "feedback-result", "data-testid": "feedback-result", role: "status" });
    const buttons = categories.map((category) => {
      const agrees = category === this.route.category;
      const button = h(
        "button",
        { type: "button", class: `correct ${agrees ? "agree" : ""}`, "data-testid": `correct-${category}`, "data-category": category },
        agrees ? `✓ ${category}` : category,
      );
      button.setAttribute("aria-label", agrees ? `${category} was right` : `should have been ${category}`);
      button.title = agrees ? "The route was right" : `This should have been routed as ${category}`;
      button.addEventListener("click", () => this.sendFeedback(category, button, result));
      return button;
    });
    this.feedback.replaceChildren(h("span", { class: "feedback-label", "aria-hidden": "true" }, "Should have been:"), ...buttons, result);
    this.feedback.hidden = false;
  }

  async sendFeedback(category, button, result) {
    const buttons = [...this.feedback.querySelectorAll("button")];
    buttons.forEach((b) => (b.disabled = true));
    result.className = "feedback-result";
    result.textContent = "Sending…";
    try {
      const response = await fetch("/v1/feedback", {
        method: "POST",
        headers: { "content-type": "application/json", ...authHeaders() },
        body: JSON.stringify({ request_id: this.route.request_id, category }),
      });
      if (!response.ok) {
        result.classList.add("bad");
        result.textContent = `Feedback not saved: ${await errorMessage(response)}`;
        return;
      }
      let body = {};
      try {
        body = await response.json();
      } catch {
        // a 200 without JSON still means it was stored
      }
      buttons.forEach((b) => b.classList.remove("chosen"));
      button.classList.add("chosen");
      result.classList.add("ok");
      const agrees = body.agrees ?? category === this.route.category;
      result.textContent = agrees ? `Thanks — recorded that ${category} was right.` : `Thanks — recorded: should have been ${category}.`;
    } catch (error) {
      result.classList.add("bad");
      result.textContent = `Feedback not saved: ${error.message}`;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  appendText(text) {
    this.text.appendData(text);
  }

  toolCall(piece) {
    const index = Number(piece.index ?? 0);
    let call = this.tools.get(index);
    if (!call) {
      const args = h("pre", { class: "tool-args" });
      const name = h("code", { class: "tool-name" });
      call = { name: "", arguments: "", args, nameNode: name };
      this.tools.set(index, call);
      this.body.append(h("div", { class: "tool-call", "data-testid": "tool-call" }, h("span", { class: "tool-label" }, "tool call "), name, args));
    }
    if (piece.name) call.name = piece.name;
    call.arguments += piece.arguments ?? "";
    call.nameNode.textContent = call.name;
    call.args.textContent = call.arguments;
  }

  showUsage(usage) {
    this.usage = usage;
    const cost = Number(usage.cost_usd) || 0;
    const baseline = Number(usage.baseline_cost_usd) || 0;
    const saved = usage.saved_usd !== undefined ? Number(usage.saved_usd) : baseline - cost;
    const prompt = Number(usage.prompt_tokens) || 0;
    const completion = Number(usage.completion_tokens) || 0;
    const tokens = `${int(prompt + completion)} tokens${usage.estimated ? " (est.)" : ""}`;
    const parts = [
      h("span", { class: "u-cost", "data-testid": "usage-cost", title: "cost of this answer" }, usd(cost)),
      h("span", { class: "u-base", "data-testid": "usage-baseline", title: "cost on the strongest model" }, `vs ${usd(baseline)} all-strong`),
      h(
        "span",
        { class: `u-saved ${saved > 0 ? "pos" : saved < 0 ? "neg" : ""}`, "data-testid": "usage-saved" },
        `saved ${usd(saved)}${baseline > 0 ? ` (${percent(saved / baseline)})` : ""}`,
      ),
      h("span", { class: "u-tokens", "data-testid": "usage-tokens", title: `${int(prompt)} prompt + ${int(completion)} completion` }, tokens),
    ];
    if (usage.wasted_speculative_tokens) {
      parts.push(h("span", { class: "u-wasted" }, `${int(usage.wasted_speculative_tokens)} speculative tokens wasted`));
    }
    this.usageNode.replaceChildren(...parts);
    this.usageNode.hidden = false;
  }

  fail(message, kind = "error") {
    this.error.hidden = false;
    this.error.replaceChildren(h("strong", {}, kind === "stopped" ? "Stopped: " : "Error: "), message);
    this.error.dataset.kind = kind;
  }
}

// -- one turn -------------------------------------------------------------------------------------------------------

async function ask(text) {
  const structured = structuredToggle.checked;
  addUserTurn(text);
  history.push({ role: "user", content: text });
  const answer = new Answer({ structured });
  conversation.append(answer.node);
  scrollDown(true);
  const controller = new AbortController();
  active = controller;
  setBusy(true);
  const body = { model: modelSelect.value || "auto", messages: history.slice() };
  if (structured) body.structured = true;
  let terminal = false;
  try {
    let response;
    try {
      response = await fetch("/v1/triage/chat", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream", ...authHeaders() },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      answer.fail(`could not reach Triage (${error.message})`);
      answer.setState("error");
      return;
    }
    if (!response.ok) {
      answer.fail(await errorMessage(response));
      answer.setState("error", `HTTP ${response.status}`);
      answer.badge.replaceChildren(h("span", { class: "chip" }, "not routed"));
      return;
    }
    if (!(response.headers.get("content-type") || "").includes("text/event-stream")) {
      answer.fail(`expected an event stream, got ${response.headers.get("content-type") || "no content type"}`);
      answer.setState("error");
      return;
    }
    answer.setState("streaming");
    outer: for await (const batch of readSSE(response)) {
      const follow = nearBottom();
      for (const { event, data } of batch) {
        let payload;
        try {
          payload = data ? JSON.parse(data) : {};
        } catch {
          answer.fail(`the server sent an event that is not JSON (${event})`);
          answer.setState("error");
          terminal = true;
          break outer;
        }
        terminal = handle(answer, event, payload);
        if (terminal) break;
      }
      answer.card?.render();
      if (follow) scrollDown(true);
      if (terminal) break;
    }
    if (!terminal) {
      answer.fail("the stream ended without a done or error event; the answer may be incomplete.", "stopped");
      answer.setState("stopped");
    }
  } catch (error) {
    answer.card?.render();
    if (error.name === "AbortError") {
      answer.fail("you stopped this answer.", "stopped");
    } else {
      answer.fail(`the connection broke: ${error.message}`, "stopped");
    }
    answer.setState("stopped");
  } finally {
    if (active === controller) active = null;
    setBusy(false);
    if (answer.state === "done") {
      const content = structured ? JSON.stringify(answer.card.doc) : answer.text.data;
      if (content) history.push({ role: "assistant", content });
    }
    scrollDown();
  }
}

/** Apply one event to the answer; true when it ends the stream. */
function handle(answer, event, data) {
  switch (event) {
    case "route":
      answer.showRoute(data);
      return false;
    case "delta":
      if (typeof data.text === "string") answer.appendText(data.text);
      return false;
    case "patch":
      if (!answer.card) return false;
      try {
        answer.card.applyEvent(data);
      } catch (error) {
        answer.fail(`a structured-output patch did not apply: ${error.message}`);
        answer.setState("error");
        return true;
      }
      return false;
    case "tool_call":
      answer.toolCall(data);
      return false;
    case "usage":
      answer.showUsage(data);
      session.add(answer.route, data);
      return false;
    case "error": {
      const where = data.path ? ` (at ${data.path})` : "";
      answer.fail(`${data.message || "the model failed"}${where}`);
      answer.setState("error", data.retryable ? "you can retry" : data.type || "");
      answer.error.dataset.type = data.type ?? "";
      return true;
    }
    case "done":
      answer.setState("done");
      return true;
    default:
      return false; // unknown events are for newer clients
  }
}

// -- the composer ---------------------------------------------------------------------------------------------------

function setBusy(busy) {
  sendButton.disabled = busy;
  stopButton.hidden = !busy;
  document.body.dataset.busy = String(busy);
}

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}

function submit() {
  const text = input.value.trim();
  if (!text || active) return;
  input.value = "";
  autosize();
  ask(text);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  } else if (event.key === "Escape" && active) {
    active.abort();
  }
});
input.addEventListener("input", autosize);
stopButton.addEventListener("click", () => active?.abort());

for (const button of document.querySelectorAll("[data-suggest]")) {
  button.addEventListener("click", () => {
    input.value = button.dataset.suggest;
    structuredToggle.checked = button.dataset.structured === "true";
    autosize();
    input.focus();
  });
}

// -- settings: an API key for servers that require one ----------------------------------------------------------

const keyInput = $('[data-testid="api-key"]');
$('[data-testid="settings-form"]').addEventListener("submit", (event) => {
  event.preventDefault();
  keyInput.dispatchEvent(new Event("change"));
});
keyInput.value = localStorage.getItem(KEY_STORAGE) ?? "";
keyInput.addEventListener("change", () => {
  const value = keyInput.value.trim();
  if (value) localStorage.setItem(KEY_STORAGE, value);
  else localStorage.removeItem(KEY_STORAGE);
  loadModels();
});

async function loadModels() {
  try {
    const response = await fetch("/v1/models", { headers: authHeaders() });
    if (!response.ok) return;
    const body = await response.json();
    const names = (body.data ?? []).map((m) => m.id).filter((id) => typeof id === "string");
    if (!names.length) return;
    const current = modelSelect.value;
    modelSelect.replaceChildren(
      ...names.map((name, i) => h("option", { value: name }, i === 0 && name !== "auto" ? `${name} (route)` : name)),
    );
    modelSelect.value = names.includes(current) ? current : names[0];
  } catch {
    // keep "auto"
  }
}

// -- tabs (WAI-ARIA tabs pattern: arrow keys move between tabs) ---------------------------------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];
function selectTab(tab, focus = false) {
  for (const t of tabs) {
    const selected = t === tab;
    t.setAttribute("aria-selected", String(selected));
    t.tabIndex = selected ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  document.dispatchEvent(new CustomEvent("tab-shown", { detail: tab.id }));
}
for (const tab of tabs) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const i = tabs.indexOf(tab);
    if (event.key === "ArrowRight") selectTab(tabs[(i + 1) % tabs.length], true);
    else if (event.key === "ArrowLeft") selectTab(tabs[(i - 1 + tabs.length) % tabs.length], true);
    else return;
    event.preventDefault();
  });
}

initStats({ authHeaders, errorMessage });
loadModels();
autosize();
document.body.dataset.ready = "true";
