/**
 * Duplicate member names in JSON texts (one check for bodies, headers and attestation requests).
 */

/**
 * Whether a JSON text (already known to parse) has an object with two members of the same name
 * (after unescaping: `"a"` and `"\u0061"` collide). `JSON.parse` silently keeps the last one while
 * other parsers keep the first, so a body with duplicates could mean different things to the
 * verifier and to whoever later reads the stored bytes; verifiers reject such bodies.
 * Pass `parsed` (`JSON.parse(text)`, when the caller has it) to skip the scan in the usual case of
 * no duplicates.
 * @public
 */
export function hasDuplicateJsonKeys(text: string, parsed?: unknown): boolean {
  if (parsed !== undefined && sameMemberCount(text, parsed)) return false;
  return scanForDuplicates(text);
}

/**
 * `JSON.parse` keeps one member per name, so `parsed` has as many members as `text` has member
 * names exactly when no object repeats a name: equal counts prove there is no duplicate without
 * building sets of names. Anything the counters do not expect (deep nesting, odd text) → false,
 * and the scanner decides.
 */
function sameMemberCount(text: string, parsed: unknown): boolean {
  let inTree: number;
  try {
    inTree = countParsedMembers(parsed);
  } catch {
    return false; // nesting too deep to recurse
  }
  return inTree === countTextMembers(text);
}

/** Own member names in a parsed JSON value (own keys only, so a polluted prototype cannot add any). */
function countParsedMembers(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let n = 0;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) n += countParsedMembers(v[i]);
    return n;
  }
  const keys = Object.keys(v);
  n = keys.length;
  for (let i = 0; i < keys.length; i++) n += countParsedMembers((v as Record<string, unknown>)[keys[i]!]);
  return n;
}

/**
 * Member names in a valid JSON text: string tokens followed (after optional whitespace) by `:`.
 * Returns -1 when the text does not look like valid JSON (the caller then scans).
 */
function countTextMembers(t: string): number {
  let n = 0;
  let i = 0;
  for (;;) {
    const open = t.indexOf('"', i);
    if (open < 0) return n;
    let close = open + 1;
    for (;;) {
      close = t.indexOf('"', close);
      if (close < 0) return -1;
      let b = close - 1;
      while (t.charCodeAt(b) === 0x5c /* \ */) b--;
      if ((close - 1 - b) % 2 === 0) break; // an even run of backslashes: the quote is not escaped
      close++;
    }
    let j = close + 1;
    for (;;) {
      const c = t.charCodeAt(j);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      j++;
    }
    if (t.charCodeAt(j) === 0x3a /* : */) n++;
    i = close + 1;
  }
}

/** The exact check: a set of names per open object. */
function scanForDuplicates(text: string): boolean {
  const stack: Array<Set<string> | null> = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(null);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      const top = stack[stack.length - 1];
      if (!top) continue;
      let j = i + 1;
      while (
        j < n &&
        (text.charCodeAt(j) === 0x20 ||
          text.charCodeAt(j) === 0x0a ||
          text.charCodeAt(j) === 0x0d ||
          text.charCodeAt(j) === 0x09)
      )
        j++;
      if (text.charCodeAt(j) !== 0x3a /* : */) continue; // a value, not a member name
      const raw = text.slice(start + 1, i);
      const name = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : raw;
      if (top.has(name)) return true;
      top.add(name);
    }
  }
  return false;
}
