// Small formatting helpers shared by the chat and the stats view.

/** Dollars: cents-level amounts with 2 decimals, tiny per-request amounts with 3 significant digits. */
export function usd(value) {
  const v = Number(value);
  if (!Number.isFinite(v)) return "—";
  if (v === 0) return "$0";
  const a = Math.abs(v);
  const sign = v < 0 ? "-" : "";
  if (a >= 1) return `${sign}$${a.toFixed(2)}`;
  if (a < 0.000001) return `${sign}<$0.000001`;
  // Up to 6 decimals, 3 significant digits, never exponent notation.
  const digits = Math.min(6, Math.max(2, 2 - Math.floor(Math.log10(a))));
  let text = a.toFixed(digits);
  while (text.endsWith("0") && text.length - text.indexOf(".") > 3) text = text.slice(0, -1);
  return `${sign}$${text}`;
}

export function percent(ratio) {
  if (!Number.isFinite(ratio)) return "—";
  return `${Math.round(ratio * 100)}%`;
}

export function ms(value) {
  const v = Number(value);
  if (value === null || value === undefined || !Number.isFinite(v)) return "—";
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 100) return `${v.toFixed(1)} ms`;
  return `${Math.round(v)} ms`;
}

export function int(value) {
  const v = Number(value);
  return Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "—";
}

/** "follow_up_questions" -> "Follow-up questions"; other keys: underscores and camelCase to words. */
export function humanize(key) {
  if (key === "follow_up_questions") return "Follow-up questions";
  const words = String(key).replace(/([a-z])([A-Z])/g, "$1 $2").replace(/[_-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : String(key);
}

/** A bucket start: unix seconds, unix milliseconds or an ISO 8601 string -> a Date (or null). */
export function toDate(start) {
  if (typeof start === "number" && Number.isFinite(start)) return new Date(start > 1e12 ? start : start * 1000);
  if (typeof start === "string" && start) {
    const n = Number(start);
    if (Number.isFinite(n)) return toDate(n);
    const t = Date.parse(start);
    return Number.isNaN(t) ? null : new Date(t);
  }
  return null;
}

export function clock(date) {
  return date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
}

export function day(date) {
  return date.toLocaleDateString("en-GB", { day: "numeric", month: "short" });
}
