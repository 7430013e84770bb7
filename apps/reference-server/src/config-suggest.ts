/**
 * Did-you-mean for configuration keys: an unknown key in a config file is almost always a typo of a
 * real one (`nonce.stor`), and a typo that is silently ignored falls back to a default — for the nonce
 * store that is the per-process memory store, i.e. replays across replicas. So unknown keys are
 * errors, and the error names the setting the operator most likely meant.
 */
import { z } from 'zod';

/** Levenshtein edit distance (insert, delete, substitute; all cost 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, sub));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

/**
 * The candidate closest to `word` (case-insensitive), or undefined when none is close enough to be a
 * plausible typo: at most a third of the word's length in edits (at least 1, at most 3), so that
 * `stor` suggests `store` but `colour` suggests nothing among `host`/`port`.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  const limit = Math.min(3, Math.max(1, Math.floor(w.length / 3)));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** Strips the wrappers that do not change an object's keys (default, prefault, optional, nullable). */
function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (
    s instanceof z.ZodDefault ||
    s instanceof z.ZodPrefault ||
    s instanceof z.ZodOptional ||
    s instanceof z.ZodNullable
  ) {
    s = s.unwrap() as z.ZodType;
  }
  return s;
}

/**
 * Every setting path a schema accepts, dotted, with `*` for an array index (`geo.allow.*.region`).
 * Objects are listed too (`nonce`), so a misplaced section can be suggested as well as a leaf.
 */
export function settingPaths(schema: z.ZodType, prefix = ''): string[] {
  const s = unwrap(schema);
  if (s instanceof z.ZodArray) return settingPaths(s.element as z.ZodType, `${prefix}*.`);
  if (!(s instanceof z.ZodObject)) return [];
  const out: string[] = [];
  for (const [key, child] of Object.entries(s.shape as Record<string, z.ZodType>)) {
    out.push(`${prefix}${key}`);
    out.push(...settingPaths(child, `${prefix}${key}.`));
  }
  return out;
}

/**
 * The message for `key`, unknown at `parent` (config-file path segments), e.g.
 * `nonce.stor: unknown setting — did you mean nonce.store?`.
 *
 * Suggestions, in order: a sibling within typo distance; the same key in another section (`store` at
 * the top level → `nonce.store`); the config key of an environment variable written into the file
 * (`SSL_CERT_PATH` → `tls.certPath`).
 */
export function unknownKeyMessage(
  parent: ReadonlyArray<PropertyKey>,
  key: string,
  known: readonly string[],
  envPaths: Readonly<Record<string, { path: string }>>,
): string {
  const where = [...parent.map((p) => String(p)), key].join('.');
  const pattern = parent.map((p) => (typeof p === 'number' ? '*' : String(p))).join('.');
  const prefix = pattern ? `${pattern}.` : '';
  const siblings = known
    .filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes('.'))
    .map((k) => k.slice(prefix.length));
  let suggestion: string | undefined;
  const sibling = closest(key, siblings);
  if (sibling !== undefined) suggestion = [...parent.map((p) => String(p)), sibling].join('.');
  else {
    const elsewhere = known.filter(
      (k) => !k.includes('*') && k.split('.').pop()?.toLowerCase() === key.toLowerCase(),
    );
    const env = envPaths[key.toUpperCase()];
    if (elsewhere.length === 1) suggestion = elsewhere[0];
    else if (env) suggestion = env.path;
  }
  return `${where}: unknown setting${suggestion ? ` — did you mean ${suggestion}?` : ''}`;
}
