/**
 * Place-name comparison key (issue 11 item 6). One definition, used for every place name the
 * verifier and the agent compare: NFKC, then Unicode default full case folding (CaseFolding.txt
 * statuses C and F), nothing else. No trimming, no removal of invisible characters, no
 * confusable (skeleton) mapping: a name that differs after that is a different name.
 */
import { CASE_FOLD_TABLE } from './case-fold-table.js';

let foldMap: Map<number, string> | undefined;

/** Decodes the generated table on first use (startup of code that never folds stays free). */
function table(): Map<number, string> {
  if (foldMap) return foldMap;
  const m = new Map<number, string>();
  for (const entry of CASE_FOLD_TABLE.split(',')) {
    const colon = entry.indexOf(':');
    const from = Number.parseInt(entry.slice(0, colon), 16);
    const to = String.fromCodePoint(
      ...entry
        .slice(colon + 1)
        .split(' ')
        .map((h) => Number.parseInt(h, 16)),
    );
    m.set(from, to);
  }
  foldMap = m;
  return m;
}

/**
 * Unicode default full case folding of `s` (C + F mappings; T mappings are not applied, so
 * U+0130 İ folds to "i̇" and U+0131 ı stays ı). JavaScript has no built-in: `toLowerCase()` is
 * locale-independent lower-casing, which differs from case folding (e.g. ß, ς, ſ, ﬁ).
 * @public
 */
export function caseFold(s: string): string {
  const m = table();
  let out = '';
  let plain = true;
  for (const ch of s) {
    const f = m.get(ch.codePointAt(0)!);
    if (f !== undefined) {
      plain = false;
      out += f;
    } else out += ch;
  }
  return plain ? s : out;
}

const foldCache = new Map<string, string>();

/**
 * The comparison key of a place name: NFKC normalisation, then {@link caseFold}. Two names
 * match exactly when their keys are equal. Consequences of the definition (asserted in tests):
 * fullwidth letters and NBSP match their ASCII forms (NFKC compatibility mappings), "e" +
 * U+0301 matches "é" (NFKC composes), "STRASSE" matches "Straße", U+017F ſ matches "s";
 * Cyrillic/Greek look-alikes, zero-width space/joiner and dotless ı do not match.
 * @public
 */
export function foldPlaceName(name: string): string {
  let f = foldCache.get(name);
  if (f === undefined) {
    f = caseFold(name.normalize('NFKC'));
    // Place names repeat endlessly; cache the folded form (bounded: cleared when full).
    if (foldCache.size >= 4096) foldCache.clear();
    foldCache.set(name, f);
  }
  return f;
}
