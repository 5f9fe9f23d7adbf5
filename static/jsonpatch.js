// Field patches of a structured answer: the browser's applier of server/triage/_jsonpatch.py, which is the spec
// (its module docstring). Functions below follow `apply_patch` and its helpers line by line.
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
