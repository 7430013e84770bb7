import { describe, expect, it } from 'vitest';
import { caseFold, evaluateGeoPolicy, foldPlaceName } from '../src/index.js';

// Issue 11 item 6: the definition is NFKC, then Unicode default full case folding (C + F), nothing
// else. Each row states what that definition gives for a look-alike of "California".
const CONFUSABLES: ReadonlyArray<[label: string, name: string, matches: boolean]> = [
  ['exact', 'California', true],
  ['upper case', 'CALIFORNIA', true],
  ['dotless i U+0131', 'Cal\u0131fornia', false],
  ['dotted capital I U+0130 (folds to i + U+0307)', 'Cal\u0130fornia', false],
  ['Cyrillic а U+0430', 'C\u0430lifornia', false],
  ['Cyrillic о U+043E', 'Calif\u043Ernia', false],
  ['Cyrillic е in Santa Clara test name', 'Californi\u0435', false],
  ['Greek Α U+0391 for A', 'C\u0391LIFORNIA', false],
  ['fullwidth (NFKC maps to ASCII)', '\uFF23\uFF41\uFF4C\uFF49\uFF46\uFF4F\uFF52\uFF4E\uFF49\uFF41', true],
  ['zero-width space U+200B', 'Cali\u200Bfornia', false],
  ['zero-width joiner U+200D', 'Cali\u200Dfornia', false],
  ['zero-width non-joiner U+200C', 'Cali\u200Cfornia', false],
  ['soft hyphen U+00AD', 'Cali\u00ADfornia', false],
  ['trailing space', 'California ', false],
];

describe('foldPlaceName: NFKC + full case folding', () => {
  const policy = { allow: [{ region: 'US', state: 'California' }] };
  for (const [label, name, matches] of CONFUSABLES) {
    it(`${label}: ${matches ? 'matches' : 'does not match'}`, () => {
      expect(foldPlaceName(name) === foldPlaceName('California')).toBe(matches);
      const d = evaluateGeoPolicy(policy, { region: { region: 'US', state: name } });
      expect(d.allowed).toBe(matches);
    });
  }

  it('NBSP and other spaces: NFKC maps U+00A0 and U+2007 to U+0020, so they match a space', () => {
    expect(foldPlaceName('Santa\u00A0Clara')).toBe(foldPlaceName('Santa Clara'));
    expect(foldPlaceName('Santa\u2007Clara')).toBe(foldPlaceName('Santa Clara'));
    // ideographic space U+3000 is a compatibility space too
    expect(foldPlaceName('Santa\u3000Clara')).toBe(foldPlaceName('Santa Clara'));
    // …but no space at all is a different name
    expect(foldPlaceName('SantaClara')).not.toBe(foldPlaceName('Santa Clara'));
  });

  it('combining marks: e + U+0301 composes to é under NFKC, and é ≠ e', () => {
    expect(foldPlaceName('Qu\u0065\u0301bec')).toBe(foldPlaceName('Qu\u00E9bec'));
    expect(foldPlaceName('QU\u00C9BEC')).toBe(foldPlaceName('Qu\u00E9bec'));
    expect(foldPlaceName('Quebec')).not.toBe(foldPlaceName('Qu\u00E9bec'));
    expect(foldPlaceName('Baden-Wu\u0308rttemberg')).toBe(foldPlaceName('BADEN-WÜRTTEMBERG'));
  });

  it('full folding: ß → ss, ſ → s, ﬁ → fi, final ς → σ, but ı stays ı and İ → i̇', () => {
    expect(caseFold('Straße')).toBe('strasse');
    expect(foldPlaceName('STRASSE')).toBe(foldPlaceName('Straße'));
    expect(caseFold('\u017F')).toBe('s');
    expect(foldPlaceName('Ba\u017Fel')).toBe(foldPlaceName('Basel'));
    expect(caseFold('\uFB01')).toBe('fi');
    expect(caseFold('\u03C2')).toBe('\u03C3');
    expect(caseFold('\u0131')).toBe('\u0131');
    expect(caseFold('\u0130')).toBe('i\u0307');
    // What upper-then-lower casing (the old definition) got wrong: ı → I → i.
    expect('\u0131'.toUpperCase().toLowerCase()).toBe('i');
  });

  it('Cherokee and Deseret (astral) letters fold to their lower forms', () => {
    expect(caseFold('\u{10400}')).toBe('\u{10428}');
    // Cherokee folds to the upper-case letters (CaseFolding.txt maps small to capital)
    expect(caseFold('\uAB70')).toBe('\u13A0');
  });

  it('the verdict carries the policy spelling of the matched entry, not the agent string', () => {
    const p = { allow: [{ region: 'US', state: 'California', city: 'Santa Clara' }] };
    const d = evaluateGeoPolicy(p, {
      region: { region: 'us', state: 'CALIFORNIA', city: 'santa\u00A0clara' },
    });
    expect(d).toEqual({
      allowed: true,
      matched: { region: 'US', state: 'California', city: 'Santa Clara' },
      matched_by: 'name',
    });
    const regionOnly = evaluateGeoPolicy(
      { allow: [{ region: 'EU' }] },
      { region: { region: 'eu', state: 'Germany' } },
    );
    expect(regionOnly).toEqual({ allowed: true, matched: { region: 'EU' }, matched_by: 'name' });
  });
});
