// The structured answer's card: a document built from `patch` events, rendered field by field. Known fields of the
// default schema (title, summary, steps, follow_up_questions) get their own look; any other key is rendered
// generically, so a custom schema still shows.

import { WireDecoder, applyPatch, escapeToken, splitPointer } from "./jsonpatch.js";
import { h } from "./dom.js";
import { humanize } from "./format.js";

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** A value of any JSON type as DOM; `key` picks a list style ("steps" are numbered). */
function renderValue(value, key, onAsk) {
  if (typeof value === "string") return h("p", { class: "value-text" }, value);
  if (Array.isArray(value)) {
    const list = h(key === "steps" ? "ol" : "ul", { class: `value-list list-${key === "steps" ? "steps" : "plain"}` });
    value.forEach((item, i) => {
      const li = h("li", { "data-testid": `item-${key}-${i}` });
      if (key === "follow_up_questions" && typeof item === "string" && onAsk) {
        li.append(h("button", { type: "button", class: "ask", title: "Ask this next" }, item));
        li.querySelector("button").addEventListener("click", () => onAsk(item));
      } else if (typeof item === "string") {
        li.append(item);
      } else {
        li.append(renderValue(item, `${key}-${i}`, onAsk));
      }
      list.append(li);
    });
    return list;
  }
  if (isObject(value)) {
    const dl = h("dl", { class: "value-object" });
    for (const [k, v] of Object.entries(value)) dl.append(h("dt", {}, humanize(k)), h("dd", {}, renderValue(v, k, onAsk)));
    return dl;
  }
  return h("code", { class: "value-scalar" }, JSON.stringify(value));
}

export class StructuredCard {
  /** `onAsk(question)`: a follow-up question was clicked. */
  constructor(onAsk) {
    this.doc = {};
    this.wire = new WireDecoder(); // the `patch` events' compact encoding, back to patches
    this.onAsk = onAsk;
    this.complete = new Set(); // paths whose `done` arrived
    this.dirty = new Set(); // top-level keys to re-render ("" for the whole document)
    this.fields = new Map(); // top-level key -> its <section>
    this.node = h("div", { class: "card", "data-testid": "structured-card" });
    this.body = h("div", { class: "card-fields" });
    this.empty = h("p", { class: "card-waiting" }, "Waiting for the first field…");
    this.json = h("pre", { "data-testid": "structured-json", class: "json" });
    this.jsonBox = h("details", { class: "json-box" }, h("summary", {}, "JSON"), this.json);
    this.node.append(this.empty, this.body, this.jsonBox);
  }

  /** Apply one `patch` event's data: the patches it encodes, in order (throws PatchError if one does not fit). */
  applyEvent(data) {
    for (const patch of this.wire.decode(data)) this.apply(patch);
  }

  /** Apply one patch (throws PatchError if it does not fit the document). */
  apply(patch) {
    this.doc = applyPatch(this.doc, patch);
    const tokens = splitPointer(patch.path);
    if (patch.op === "done") this.complete.add(patch.path);
    this.dirty.add(tokens.length ? tokens[0] : "");
  }

  /** Re-render the fields changed since the last call. */
  render() {
    if (!this.dirty.size) return;
    this.empty.hidden = true;
    if (this.dirty.has("") || !isObject(this.doc)) {
      // A non-object answer, or the root itself changed: render the whole document.
      this.body.replaceChildren(h("section", { class: "field", "data-testid": "field-root" }, renderValue(this.doc, "root", this.onAsk)));
      this.fields.clear();
      if (isObject(this.doc)) for (const key of Object.keys(this.doc)) this._renderField(key);
    } else {
      for (const key of this.dirty) this._renderField(key);
    }
    this.dirty.clear();
    this.json.textContent = JSON.stringify(this.doc, null, 2);
    this.node.dataset.complete = String(this.complete.has(""));
  }

  _renderField(key) {
    if (!isObject(this.doc) || !Object.prototype.hasOwnProperty.call(this.doc, key)) return;
    const value = this.doc[key];
    let section = this.fields.get(key);
    if (!section) {
      section = h("section", { class: `field field-${key.replace(/[^\w-]/g, "_")}`, "data-testid": `field-${key}` });
      this.fields.set(key, section);
      this.body.querySelector('[data-testid="field-root"]')?.remove();
      this.body.append(section);
    }
    const complete = this.complete.has(`/${escapeToken(key)}`) || this.complete.has("");
    section.dataset.complete = String(complete);
    if (key === "title" && typeof value === "string") {
      section.replaceChildren(h("h3", { class: "card-title", "data-testid": "structured-title" }, value));
      return;
    }
    section.replaceChildren(h("h4", { class: "field-label" }, humanize(key)), renderValue(value, key, this.onAsk));
  }
}
