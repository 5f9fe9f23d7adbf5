// Hand-drawn SVG charts, sized to the pixel width they get (so text stays legible on a phone); colours come from
// CSS classes, so light and dark themes both apply.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgRoot(width, height, label) {
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart" });
  svg.append(el("title", {}, label));
  return svg;
}

/** A label shortened to fit about `px` pixels at the chart's font size. */
function fit(label, px) {
  const max = Math.max(3, Math.floor(px / 7));
  return label.length > max ? label.slice(0, max - 1) + "…" : label;
}

/**
 * Horizontal bars: items [{label, value, cls?}] with value >= 0.
 * options: width, label (accessible name), format(value) -> text, total (for shares; default the sum).
 */
export function barChart(items, { width = 320, label = "bar chart", format = String, total } = {}) {
  const row = 30;
  const top = 4;
  const height = Math.max(row, items.length * row) + top;
  const svg = svgRoot(width, height, label);
  const labelW = Math.min(130, Math.round(width * 0.32));
  const valueW = Math.min(96, Math.round(width * 0.25));
  const barW = Math.max(20, width - labelW - valueW - 12);
  const max = Math.max(...items.map((d) => d.value), 0);
  const sum = total ?? items.reduce((a, d) => a + d.value, 0);
  items.forEach((d, i) => {
    const y = top + i * row;
    const g = el("g", { class: "bar-row" });
    g.append(el("text", { x: labelW - 8, y: y + 19, "text-anchor": "end", class: "chart-label" }, fit(d.label, labelW - 8)));
    g.append(el("rect", { x: labelW, y: y + 6, width: barW, height: 18, rx: 4, class: "bar-track" }));
    const w = max > 0 ? Math.max(d.value > 0 ? 2 : 0, (d.value / max) * barW) : 0;
    g.append(el("rect", { x: labelW, y: y + 6, width: w.toFixed(1), height: 18, rx: 4, class: `bar ${d.cls || ""}` }));
    const share = sum > 0 ? ` · ${Math.round((d.value / sum) * 100)}%` : "";
    g.append(el("text", { x: labelW + barW + 8, y: y + 19, class: "chart-value" }, format(d.value) + share));
    g.append(el("title", {}, `${d.label}: ${format(d.value)}${share}`));
    svg.append(g);
  });
  if (!items.length) svg.append(el("text", { x: 0, y: 20, class: "chart-label" }, "no data yet"));
  return svg;
}

/** A round tick step (1, 2 or 5 times a power of ten) giving about four intervals up to `v`. */
function niceStep(v) {
  if (!(v > 0)) return 0.25;
  const raw = v / 4;
  const exp = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * exp >= raw) return m * exp;
  return 10 * exp;
}

/**
 * Lines over x: series [{name, cls, points: [{x, y}]}], x numbers (times or indexes), y >= 0. The area between the
 * first two series is shaded (the baseline above, the spend below: what routing saved).
 * options: width, height, label, formatY(y), formatX(x).
 */
export function lineChart(series, { width = 320, height = 200, label = "line chart", formatY = String, formatX = String } = {}) {
  const svg = svgRoot(width, height, label);
  const pad = { left: 64, right: 12, top: 10, bottom: 26 };
  const w = Math.max(40, width - pad.left - pad.right);
  const h = Math.max(40, height - pad.top - pad.bottom);
  const all = series.flatMap((s) => s.points);
  if (!all.length) {
    svg.append(el("text", { x: pad.left, y: pad.top + h / 2, class: "chart-label" }, "no data yet"));
    return svg;
  }
  let x0 = Math.min(...all.map((p) => p.x));
  let x1 = Math.max(...all.map((p) => p.x));
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  const step = niceStep(Math.max(...all.map((p) => p.y)));
  const ticks = Math.max(1, Math.ceil(Math.max(...all.map((p) => p.y)) / step - 1e-9));
  const yMax = step * ticks;
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * w;
  const sy = (y) => pad.top + h - (y / yMax) * h;
  for (let i = 0; i <= ticks; i++) {
    const v = step * i;
    const y = sy(v).toFixed(1);
    svg.append(el("line", { x1: pad.left, x2: pad.left + w, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: pad.left - 6, y: Number(y) + 4, "text-anchor": "end", class: "chart-tick" }, formatY(v)));
  }
  const xs = [...new Set(all.map((p) => p.x))];
  if (xs.length === 1) {
    svg.append(el("text", { x: sx(xs[0]), y: height - 6, "text-anchor": "middle", class: "chart-tick" }, formatX(xs[0])));
  } else {
    svg.append(el("text", { x: pad.left, y: height - 6, class: "chart-tick" }, formatX(xs[0])));
    svg.append(el("text", { x: pad.left + w, y: height - 6, "text-anchor": "end", class: "chart-tick" }, formatX(xs[xs.length - 1])));
  }
  const pts = (s) => s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`);
  if (series.length >= 2 && series[0].points.length > 1 && series[1].points.length === series[0].points.length) {
    const area = [...pts(series[0]), ...pts(series[1]).reverse()].join(" ");
    svg.append(el("polygon", { points: area, class: "area-saved" }));
  }
  for (const s of series) {
    svg.append(el("polyline", { points: pts(s).join(" "), class: `line ${s.cls || ""}`, fill: "none" }));
    for (const p of s.points) {
      const dot = el("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 3, class: `dot ${s.cls || ""}` });
      dot.append(el("title", {}, `${s.name} · ${formatX(p.x)}: ${formatY(p.y)}`));
      svg.append(dot);
    }
  }
  return svg;
}
