/**
 * Fast RFC 8785 (JCS) serialisation for the plain JSON values `JSON.parse` produces. It is a drop-in for
 * the `canonicalize` package: for every input it handles it returns the very same text (property-tested
 * against `canonicalize`); for anything else (non-plain objects, `toJSON`, functions, bigint, symbols in
 * arrays, NaN/Infinity, excessive depth) it returns `undefined` and the caller uses `canonicalize`, so
 * behaviour — including which inputs throw — stays the library's.
 *
 * Why: the payload signing input is serialised on every `POST /metrics`; `canonicalize` builds it with
 * `reduce` and template strings and re-escapes every key and string through `JSON.stringify`.
 */

/**
 * Whether `JSON.stringify` would escape something in `s` (`"`, `\\`, controls) or might (surrogates):
 * such strings go to it. A plain loop: cheaper than a regex call for the short strings of a payload.
 */
function needsEscape(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return true;
  }
  return false;
}

/** `"name":` per member name: payloads repeat the same few names. Bounded; emptied when full. */
const memberPrefix = new Map<string, string>();
const MEMBER_PREFIX_MAX = 1024;

function prefix(k: string): string {
  let p = memberPrefix.get(k);
  if (p === undefined) {
    p = `${str(k)}:`;
    if (memberPrefix.size >= MEMBER_PREFIX_MAX) memberPrefix.clear();
    memberPrefix.set(k, p);
  }
  return p;
}

/** Beyond this nesting the slow path decides (it throws RangeError on really deep input, as before). */
const MAX_DEPTH = 200;

class Fallback {}
const FALLBACK = new Fallback();

function str(s: string): string {
  return needsEscape(s) ? JSON.stringify(s) : `"${s}"`;
}

function value(v: unknown, depth: number, skipKey: string | undefined): string {
  switch (typeof v) {
    case 'string':
      return str(v);
    case 'number':
      // Finite numbers: `String` and `JSON.stringify` are both ECMAScript Number::toString (-0 → "0").
      if (!Number.isFinite(v)) throw FALLBACK;
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      if (v === null) return 'null';
      if (depth >= MAX_DEPTH) throw FALLBACK;
      return Array.isArray(v) ? array(v, depth) : object(v as Record<string, unknown>, depth, skipKey);
    default:
      throw FALLBACK;
  }
}

function array(a: unknown[], depth: number): string {
  if (Object.getPrototypeOf(a) !== Array.prototype || (a as { toJSON?: unknown }).toJSON !== undefined) {
    throw FALLBACK;
  }
  let out = '[';
  for (let i = 0; i < a.length; i++) {
    if (i > 0) out += ',';
    // A hole is not an undefined element to canonicalize (its `reduce` skips holes and writes
    // "[,1]"): leave sparse arrays to it. Undefined elements (and symbols) are written as null.
    if (!(i in a)) throw FALLBACK;
    const e = a[i];
    out += e === undefined ? 'null' : value(e, depth + 1, undefined);
  }
  return `${out}]`;
}

function object(o: Record<string, unknown>, depth: number, skipKey: string | undefined): string {
  const proto = Object.getPrototypeOf(o);
  if ((proto !== Object.prototype && proto !== null) || o.toJSON !== undefined) throw FALLBACK;
  // Default sort = UTF-16 code unit order, which is what RFC 8785 §3.2.3 asks for (and canonicalize does).
  const keys = Object.keys(o).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    if (k === skipKey) continue;
    const e = o[k];
    if (e === undefined) continue; // omitted, as by canonicalize (symbols fall back via value())
    if (first) first = false;
    else out += ',';
    out += prefix(k) + value(e, depth + 1, undefined);
  }
  return `${out}}`;
}

/**
 * JCS text of `v` (without the top-level member `skipKey`, when given and `v` is an object), or
 * `undefined` when the input is outside the fast path.
 */
export function fastJcs(v: unknown, skipKey?: string): string | undefined {
  try {
    return value(v, 0, skipKey);
  } catch (err) {
    if (err === FALLBACK || err instanceof RangeError) return undefined;
    throw err;
  }
}
