// Field patches of a structured answer: the browser's applier of server/triage/stream/structured/_patch.py, which is
// the spec (its module docstring). Functions below follow `apply_patch` and its helpers line by line. `WireDecoder`
// (at the end) turns the compact `patch` events of stream/structured/_wire.py back into those patches.
//
// A client keeps a document that starts as {} and applies the patches in order; after the last one the document
// equals JSON.parse of the model's full JSON text. `applyPatch` never modifies its input: containers on the path
// are copied, the rest is shared.

export class PatchError extends Error {
  constructor(message, path) {
    super(message);
    this.name = "PatchError";
    this.path = path;
  }
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

/** One reference token of a JSON pointer (RFC 6901 section 3): "~" first, so "/" -> "~1" is not re-escaped. */
export function escapeToken(key) {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** The unescaped tokens of a JSON pointer; "" (the whole document) has none. */
export function splitPointer(path) {
  if (path === "") return [];
  if (path[0] !== "/") throw new PatchError(`invalid JSON pointer ${JSON.stringify(path)}: must be empty or start with '/'`, path);
  // RFC 6901 section 4: "~1" before "~0", so "~01" decodes to "~1" and not to "/".
  return path.slice(1).split("/").map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function copy(value) {
  if (Array.isArray(value)) return value.map(copy);
  if (isObject(value)) {
    const out = {};
    for (const [k, v] of Object.entries(value)) defineMember(out, k, copy(v));
    return out;
  }
  return value;
}

// A plain assignment to "__proto__" would set the prototype instead of adding a member; JSON keys are data.
function defineMember(obj, key, value) {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

// Python's `patch.get("value")`: a missing value is None.
const valueOf = (patch) => (patch.value === undefined ? null : patch.value);

function shallow(obj) {
  const out = {};
  for (const k of Object.keys(obj)) defineMember(out, k, obj[k]);
  return out;
}

function index(token, size, path, insert) {
  // RFC 6901: decimal, no leading zeros (so "01" and "-1" are not indexes).
  if (!/^[0-9]+$/.test(token) || (token.length > 1 && token[0] === "0")) {
    throw new PatchError(`${path}: ${JSON.stringify(token)} is not an array index`, path);
  }
  const i = Number(token);
  if (i > size || (i === size && !insert)) throw new PatchError(`${path}: index ${i} is out of range (length ${size})`, path);
  return i;
}

function applyAt(node, tokens, depth, patch) {
  const path = patch.path;
  const token = tokens[depth];
  const last = depth === tokens.length - 1;
  if (isObject(node)) {
    if (last && patch.op === "add") {
      const copied = shallow(node);
      defineMember(copied, token, copy(valueOf(patch)));
      return copied;
    }
    if (!has(node, token)) throw new PatchError(`${path}: no member ${JSON.stringify(token)}`, path);
    const child = node[token];
    const copied = shallow(node);
    defineMember(copied, token, last ? applyLeaf(child, patch) : applyAt(child, tokens, depth + 1, patch));
    return copied;
  }
  if (Array.isArray(node)) {
    if (last && patch.op === "add") {
      const copiedList = node.slice();
      const i = token === "-" ? node.length : index(token, node.length, path, true);
      copiedList.splice(i, 0, copy(valueOf(patch)));
      return copiedList;
    }
    const i = index(token, node.length, path, false);
    const copiedList = node.slice();
    const child = node[i];
    copiedList[i] = last ? applyLeaf(child, patch) : applyAt(child, tokens, depth + 1, patch);
    return copiedList;
  }
  throw new PatchError(`${path}: cannot descend into a ${node === null ? "null" : typeof node}`, path);
}

/** The op applied to the value that `path` names (an existing one: `add` is handled by the parent). */
function applyLeaf(target, patch) {
  if (patch.op === "done") return target;
  if (patch.op === "append") {
    if (typeof target !== "string" || typeof patch.value !== "string") {
      throw new PatchError(`${patch.path}: append needs a string target and value`, patch.path);
    }
    return target + patch.value;
  }
  throw new PatchError(`unknown patch op ${JSON.stringify(patch.op)}`, patch.path);
}

/** The document after one patch; `doc` itself is not modified. Throws PatchError for a patch that does not fit. */
export function applyPatch(doc, patch) {
  if (!patch || typeof patch.path !== "string") throw new PatchError("a patch needs a string `path`", undefined);
  const tokens = splitPointer(patch.path);
  if (!tokens.length) {
    if (patch.op === "add") return copy(valueOf(patch));
    return applyLeaf(doc, patch);
  }
  return applyAt(doc, tokens, 0, patch);
}

// -- the wire encoding (server/triage/stream/structured/_wire.py, whose docstring is the spec) -------------------------

const OBJECT = 0;
const ARRAY = 1;
const STRING = 2;

function kindOf(value) {
  if (typeof value === "string") return STRING;
  if (Array.isArray(value)) return ARRAY;
  if (isObject(value)) return OBJECT;
  return null;
}

/** Each `patch` event's parsed data in, the patches it stands for out; one per stream (it keeps the open values). */
export class WireDecoder {
  constructor() {
    this.stack = [{ path: "", kind: OBJECT, count: 0 }]; // the client's {} is open at the start
    this.fresh = true;
  }

  decode(data) {
    const out = [];
    for (const item of Array.isArray(data) ? data : [data]) this._item(item, out);
    return out;
  }

  _error(message) {
    const top = this.stack[this.stack.length - 1];
    const path = top ? top.path : "";
    return new PatchError(`structured stream: ${message} (open: ${JSON.stringify(path)})`, path);
  }

  _item(item, out) {
    const stack = this.stack;
    const top = stack[stack.length - 1];
    if (typeof item === "string") {
      if (!top || top.kind !== STRING) throw this._error("an append with no open string");
      out.push({ op: "append", path: top.path, value: item });
    } else if (typeof item === "number" && Number.isInteger(item)) {
      if (item < 1 || item > stack.length) throw this._error(`${item} dones with ${stack.length} open values`);
      for (let i = 0; i < item; i++) out.push({ op: "done", path: stack.pop().path });
    } else if (Array.isArray(item) && (item.length === 1 || item.length === 2)) {
      const value = item[item.length - 1];
      if (!top) throw this._error("an add after the document is complete");
      let path;
      let own;
      if (item.length === 2) {
        if (top.kind !== OBJECT || typeof item[0] !== "string") {
          throw this._error("a member [key, value] needs an open object and a string key");
        }
        path = own = `${top.path}/${escapeToken(item[0])}`;
      } else if (top.kind === ARRAY) {
        path = `${top.path}/-`;
        own = `${top.path}/${top.count}`;
        top.count += 1;
      } else if (this.fresh) {
        stack.pop(); // an answer that is not an object replaces the client's {}
        path = own = "";
      } else {
        throw this._error("a push [value] needs an open array");
      }
      out.push({ op: "add", path, value });
      const kind = kindOf(value);
      if (kind !== null) stack.push({ path: own, kind, count: Array.isArray(value) ? value.length : 0 });
    } else {
      throw this._error(`${JSON.stringify(item)} is not an item (a string, a positive integer, [value] or [key, value])`);
    }
    this.fresh = false;
  }
}
