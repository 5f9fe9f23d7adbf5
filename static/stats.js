// The stats view: this session's numbers (from `usage` events, computed here) and the server's (GET /v1/stats),
// each as route mix, models, and cost against the all-strong baseline.

import { barChart, lineChart } from "./charts.js";
import { h } from "./dom.js";
import { clock, day, int, percent, toDate, usd } from "./format.js";

const KNOWN = ["simple", "reasoning", "tool_use"];
const catClass = (c) => (KNOWN.includes(c) ? `cat-${c}` : "cat-other");

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : Number(v) || 0);

/** This session's answers that reported usage. */
export const session = {
  answers: [], // {t, category, model, cost, baseline, saved, tokens}
  listeners: new Set(),
  add(route, usage) {
    const cost = num(usage.cost_usd);
    const baseline = num(usage.baseline_cost_usd);
    this.answers.push({
      t: Date.now(),
      category: route?.category ?? "forced",
      model: route?.model ?? "?",
      cost,
      baseline,
      saved: usage.saved_usd !== undefined ? num(usage.saved_usd) : baseline - cost,
      tokens: num(usage.prompt_tokens) + num(usage.completion_tokens),
    });
    for (const listener of this.listeners) listener();
  },
  totals() {
    const t = { requests: this.answers.length, cost: 0, baseline: 0, saved: 0, tokens: 0 };
    for (const a of this.answers) {
      t.cost += a.cost;
      t.baseline += a.baseline;
      t.saved += a.saved;
      t.tokens += a.tokens;
    }
    return t;
  },
};

function count(items, key) {
  const out = new Map();
  for (const item of items) out.set(item[key], (out.get(item[key]) ?? 0) + 1);
  return out;
}

/** {name: n} or {name: {requests: n, ...}} (either shape is accepted) -> [{label, value}] sorted by value. */
function entries(map) {
  if (!map || typeof map !== "object") return [];
  const rows = Object.entries(map).map(([label, v]) => ({
    label,
    value: typeof v === "object" && v !== null ? num(v.requests ?? v.count ?? v.n) : num(v),
  }));
  return rows.filter((r) => r.value > 0).sort((a, b) => b.value - a.value);
}

/** A chart box whose SVG is redrawn at the box's width (on resize too). */
function chartBox(title, testid, draw, legend = null) {
  const box = h("figure", { class: "chart-box", "data-testid": testid }, h("figcaption", {}, title));
  const holder = h("div", { class: "chart-holder" });
  box.append(holder);
  if (legend) box.append(legend);
  let last = 0;
  const redraw = () => {
    const width = Math.floor(holder.clientWidth);
    if (!width || width === last) return;
    last = width;
    holder.replaceChildren(draw(width));
  };
  new ResizeObserver(redraw).observe(holder);
  box.redraw = () => {
    last = 0;
    redraw();
  };
  return box;
}

function tiles(items) {
  return h(
    "div",
    { class: "tiles" },
    ...items.map(([label, value, testid, cls]) =>
      h("div", { class: `tile ${cls ?? ""}`, "data-testid": testid }, h("span", { class: "tile-value" }, value), h("span", { class: "tile-label" }, label)),
    ),
  );
}

/** The cost charts' key: the routed spend, the all-strong baseline, and the area between them. */
function costLegend() {
  return h(
    "div",
    { class: "legend", "aria-hidden": "true" },
    h("span", { class: "key key-cost" }, "routed"),
    h("span", { class: "key key-baseline" }, "all-strong"),
    h("span", { class: "key key-saved" }, "saved"),
  );
}

// -- this session -------------------------------------------------------------------------------------------------

function renderSessionTotal() {
  const node = document.querySelector('[data-testid="session-total"]');
  const t = session.totals();
  if (!t.requests) {
    node.textContent = "Session: no answers yet";
    return;
  }
  const ratio = t.baseline > 0 ? ` (${percent(t.saved / t.baseline)} saved)` : "";
  node.replaceChildren(
    h("span", { class: "st-label" }, "Session "),
    h("strong", { "data-testid": "session-cost" }, usd(t.cost)),
    h("span", { class: "st-vs" }, ` vs ${usd(t.baseline)} all-strong`),
    h("span", { class: "st-saved" }, ratio),
  );
  node.title = `${t.requests} answers, ${int(t.tokens)} tokens`;
}

function renderSessionStats(root) {
  const t = session.totals();
  const answers = session.answers;
  const mix = [...count(answers, "category")].map(([label, value]) => ({ label, value, cls: catClass(label) }));
  const models = [...count(answers, "model")].map(([label, value]) => ({ label, value, cls: "bar-model" }));
  let cost = 0;
  let baseline = 0;
  const costLine = [];
  const baseLine = [];
  answers.forEach((a, i) => {
    cost += a.cost;
    baseline += a.baseline;
    baseLine.push({ x: i + 1, y: baseline });
    costLine.push({ x: i + 1, y: cost });
  });
  const charts = [
    chartBox("Route mix", "session-route-mix", (w) => barChart(mix, { width: w, label: "route mix of this session", format: int })),
    chartBox("Models", "session-models", (w) => barChart(models, { width: w, label: "models of this session", format: int })),
    chartBox("Cumulative cost vs all-strong", "session-cost-chart", (w) =>
      lineChart(
        [
          { name: "all-strong", cls: "s-baseline", points: baseLine },
          { name: "routed", cls: "s-cost", points: costLine },
        ],
        { width: w, height: 200, label: "cumulative cost of this session against the all-strong baseline", formatY: usd, formatX: (x) => `#${x}` },
      ),
      costLegend(),
    ),
  ];
  root.replaceChildren(
    tiles([
      ["answers", int(t.requests), "session-requests"],
      ["spent", usd(t.cost), "session-spent"],
      ["all-strong", usd(t.baseline), "session-baseline"],
      [t.baseline > 0 ? `saved · ${percent(t.saved / t.baseline)}` : "saved", usd(t.saved), "session-saved", "good"],
    ]),
    answers.length ? h("div", { class: "charts" }, ...charts) : h("p", { class: "muted" }, "Ask something in the chat: each answer's cost shows up here."),
  );
  charts.forEach((c) => c.redraw());
}

// -- the server ---------------------------------------------------------------------------------------------------

function renderServerStats(root, body, bucket) {
  const totals = body?.totals && typeof body.totals === "object" ? body.totals : {};
  const buckets = Array.isArray(body?.buckets) ? body.buckets : [];
  const cost = num(totals.cost_usd);
  const baseline = num(totals.baseline_cost_usd);
  const saved = totals.saved_usd !== undefined ? num(totals.saved_usd) : baseline - cost;
  const mix = entries(totals.categories ?? totals.by_category).map((r) => ({ ...r, cls: catClass(r.label) }));
  const models = entries(totals.models ?? totals.by_model).map((r) => ({ ...r, cls: "bar-model" }));
  const points = buckets
    .map((b) => ({ date: toDate(b?.start), cost: num(b?.cost_usd), baseline: num(b?.baseline_cost_usd) }))
    .filter((p) => p.date)
    .sort((a, b) => a.date - b.date);
  const formatX = (x) => {
    const d = new Date(x);
    return bucket === "day" ? day(d) : `${day(d)} ${clock(d)}`;
  };
  const agreement = typeof totals.agreement === "number" ? percent(totals.agreement) : "—";
  const charts = [
    chartBox("Route mix", "server-route-mix", (w) => barChart(mix, { width: w, label: "route mix, all requests", format: int })),
    chartBox("Models", "server-models", (w) => barChart(models, { width: w, label: "models, all requests", format: int })),
    chartBox(`Cost vs all-strong per ${bucket}`, "server-cost-chart", (w) =>
      lineChart(
        [
          { name: "all-strong", cls: "s-baseline", points: points.map((p) => ({ x: +p.date, y: p.baseline })) },
          { name: "routed", cls: "s-cost", points: points.map((p) => ({ x: +p.date, y: p.cost })) },
        ],
        { width: w, height: 200, label: `cost per ${bucket} against the all-strong baseline`, formatY: usd, formatX },
      ),
      costLegend(),
    ),
  ];
  root.replaceChildren(
    tiles([
      ["requests", int(totals.requests), "server-requests"],
      ["spent", usd(cost), "server-spent"],
      ["all-strong", usd(baseline), "server-baseline"],
      [baseline > 0 ? `saved · ${percent(saved / baseline)}` : "saved", usd(saved), "server-saved", "good"],
      ["corrections", int(totals.corrections), "server-corrections"],
      ["router agreement", agreement, "server-agreement"],
    ]),
    h("div", { class: "charts" }, ...charts),
  );
  charts.forEach((c) => c.redraw());
}

export function initStats({ authHeaders, errorMessage }) {
  const sessionRoot = document.querySelector('[data-testid="session-stats"]');
  const serverRoot = document.querySelector('[data-testid="server-stats"]');
  const serverStatus = document.querySelector('[data-testid="server-stats-status"]');
  const refresh = document.querySelector('[data-testid="stats-refresh"]');
  const bucketSelect = document.querySelector('[data-testid="stats-bucket"]');
  const panel = document.getElementById("panel-stats");
  let loading = null;

  async function loadServer() {
    if (loading) return loading;
    const bucket = bucketSelect.value === "day" ? "day" : "hour";
    serverStatus.textContent = "Loading…";
    serverStatus.dataset.state = "loading";
    loading = (async () => {
      try {
        const response = await fetch(`/v1/stats?bucket=${bucket}`, { headers: authHeaders() });
        if (response.status === 404 || response.status === 405) {
          serverStatus.textContent = "Server stats unavailable (this Triage has no /v1/stats).";
          serverStatus.dataset.state = "unavailable";
          serverRoot.replaceChildren();
          return;
        }
        if (!response.ok) {
          serverStatus.textContent = `Server stats failed: ${await errorMessage(response)}`;
          serverStatus.dataset.state = "error";
          serverRoot.replaceChildren();
          return;
        }
        const body = await response.json();
        renderServerStats(serverRoot, body, bucket);
        serverStatus.textContent = `Updated ${clock(new Date())}${body?.dropped ? ` · ${int(body.dropped)} records dropped` : ""}`;
        serverStatus.dataset.state = "ok";
      } catch (error) {
        serverStatus.textContent = `Server stats failed: ${error.message}`;
        serverStatus.dataset.state = "error";
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  const update = () => {
    renderSessionTotal();
    if (!panel.hidden) renderSessionStats(sessionRoot);
  };
  session.listeners.add(update);
  document.addEventListener("tab-shown", (event) => {
    if (event.detail !== "tab-stats") return;
    renderSessionStats(sessionRoot);
    loadServer();
  });
  refresh.addEventListener("click", () => loadServer());
  bucketSelect.addEventListener("change", () => loadServer());
  renderSessionTotal();
}
