import fc from 'fast-check';
import { parseDictionary, parseItem, parseList, Token } from 'structured-headers';
import { describe, expect, it } from 'vitest';
import {
  isSfInnerList,
  parseSfDictionary,
  parseSfItem,
  parseSfList,
  SfDecimal,
  serializeSfDictionary,
  serializeSfItem,
  serializeSfList,
  serializeSfMember,
} from '../src/sf.js';
import { signatureBytes } from '../src/verify.js';

/** Comparable form of parsed values from either parser (decimals → numbers, tokens/bytes tagged). */
function plain(value: unknown): unknown {
  if (value instanceof SfDecimal) return value.value + 0; // -0 and 0 are the same Integer/Decimal
  if (typeof value === 'number') return value + 0;
  if (value instanceof Token) return `token:${value.toString()}`;
  if (value instanceof ArrayBuffer || value instanceof Uint8Array) {
    return `bytes:${Buffer.from(value as Uint8Array).toString('hex')}`;
  }
  if (value instanceof Map) return [...value].map(([k, v]) => [k, plain(v)]);
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

function attempt<T>(f: () => T): { ok: true; value: T } | { ok: false } {
  try {
    return { ok: true, value: f() };
  } catch {
    return { ok: false };
  }
}

describe('RFC 8941 parser and serialiser', () => {
  it('parses and canonicalises known examples', () => {
    expect(serializeSfDictionary(parseSfDictionary('a=1,  b=2;x=1;y=2,   c=(a   b   c), d'))).toBe(
      'a=1, b=2;x=1;y=2, c=(a b c), d',
    );
    expect(serializeSfDictionary(parseSfDictionary('a=(1 2);p=1.50;q=1.0;r=-0.0, b=-0'))).toBe(
      'a=(1 2);p=1.5;q=1.0;r=0.0, b=0',
    );
    expect(serializeSfItem(parseSfItem('"a \\"q\\" \\\\ b"'))).toBe('"a \\"q\\" \\\\ b"');
    expect(serializeSfItem(parseSfItem(':cHJldGVuZA:'))).toBe(':cHJldGVuZA==:');
    expect(serializeSfList(parseSfList('*foo:bar/baz, ?0, ( "x";a  1 )'))).toBe(
      '*foo:bar/baz, ?0, ("x";a 1)',
    );
    // Parameters must follow their item directly.
    expect(attempt(() => parseSfList('( "x" ;a)')).ok).toBe(false);
    expect(serializeSfDictionary(parseSfDictionary('a=1, a=2, b'))).toBe('a=2, b');
  });

  it('reports raw member text only when it is canonical', () => {
    const raw = new Map<string, string>();
    parseSfDictionary(
      'a=("@method" "@path");created=1;keyid="k", b=( "x"), c=("x" );p=01, d=("x");p=?1, e=:AB:, f=1.50, g=("x";q=1;q=2)',
      raw,
    );
    expect([...raw]).toEqual([['a', '("@method" "@path");created=1;keyid="k"']]);
  });

  it('rejects what RFC 8941 rejects', () => {
    for (const bad of [
      'a=1,',
      'a=1,,b=2',
      'A=1',
      'a=1234567890123456',
      'a=1.2345',
      'a=1.',
      'a=1234567890123.5',
      'a="\\a"',
      'a="é"',
      'a="unterminated',
      'a=?2',
      'a=(1 2',
      'a=(1,2)',
      'a=:AB=C:',
      'a=:A:',
      'a=@1659578233',
      'a=%"x"',
      'a=1 b=2',
    ]) {
      expect(attempt(() => parseSfDictionary(bad)).ok, bad).toBe(false);
    }
  });

  const sfChar = fc.constantFrom(...'abcAZ*-_.0123456789 ;=,()"\\:?+/!#%@\t'.split(''));
  // Mostly-valid structured text: random members and parameters with random (sometimes invalid) pieces.
  const bare = fc.oneof(
    fc.integer({ min: -999_999_999_999_999, max: 999_999_999_999_999 }).map(String),
    fc
      .tuple(
        fc.integer({ min: -99999, max: 99999 }),
        fc.integer({ min: 0, max: 999 }),
        fc.integer({ min: 1, max: 4 }),
      )
      .map(([i, f, w]) => `${i}.${String(f).padStart(3, '0').slice(0, w)}`),
    fc.string({ unit: fc.constantFrom(...'ab "\\xyz'.split('')), maxLength: 8 }).map((t) => `"${t}"`),
    fc.constantFrom('tok', '*t:/x', 'T1', '?1', '?0', ':AQID:', ':cHJldGVuZA==:', ':AB:', '0', '-0', '00012'),
  );
  const params = fc
    .array(fc.tuple(fc.constantFrom('a', 'b', '*k', 'x-y', 'A'), fc.option(bare)), { maxLength: 3 })
    .map((ps) => ps.map(([k, v]) => `;${k}${v === null ? '' : `=${v}`}`).join(''));
  const member = fc.oneof(
    fc.tuple(bare, params).map(([b, p]) => b + p),
    fc
      .tuple(fc.array(fc.tuple(bare, params), { maxLength: 3 }), fc.constantFrom(' ', '  ', ''), params)
      .map(([items, sp, p]) => `(${sp}${items.map(([b, q]) => b + q).join(' ')}${sp})${p}`),
  );
  const structured = fc
    .array(fc.tuple(fc.constantFrom('a', 'b', 'sig', '*x', 'k.1'), fc.option(member), params), {
      minLength: 1,
      maxLength: 4,
    })
    .chain((ms) =>
      fc
        .constantFrom(', ', ',', ' ,\t', ' , ')
        .map((sep) => ms.map(([k, m, p]) => (m === null ? k + p : `${k}=${m}`)).join(sep)),
    );
  const sfText = fc.oneof(
    fc.string({ unit: sfChar, maxLength: 40 }),
    fc.string({ maxLength: 30 }),
    structured,
    member,
  );

  it('agrees with structured-headers (outside RFC 9651-only syntax) and round-trips canonically', () => {
    const check = <T>(mine: (t: string) => T, theirs: (t: string) => unknown, ser: (v: T) => string) =>
      fc.property(sfText, (text) => {
        const a = attempt(() => mine(text));
        const b = attempt(() => theirs(text));
        // structured-headers also parses RFC 9651 Dates (@) and Display Strings (%"), which RFC 8941 lacks.
        if (!text.includes('@') && !text.includes('%')) expect(a.ok, JSON.stringify(text)).toBe(b.ok);
        if (a.ok && b.ok) expect(plain(a.value)).toEqual(plain(b.value));
        if (a.ok) {
          const canonical = ser(a.value);
          expect(plain(mine(canonical))).toEqual(plain(a.value));
          expect(ser(mine(canonical))).toBe(canonical);
        }
      });
    fc.assert(check(parseSfDictionary, parseDictionary, serializeSfDictionary), { numRuns: 500 });
    // Raw member text is reported as canonical exactly when it equals the canonical serialisation.
    fc.assert(
      fc.property(sfText, (text) => {
        const raw = new Map<string, string>();
        const parsed = attempt(() => parseSfDictionary(text, raw));
        if (!parsed.ok) return;
        for (const [key, member] of parsed.value) {
          const canonical = serializeSfMember(member);
          if (raw.has(key)) expect(raw.get(key)).toBe(canonical);
          // A canonical dictionary writes `key=value` for everything but a bare `true` item (written `key`).
          const again = new Map<string, string>();
          parseSfDictionary(serializeSfDictionary(parsed.value), again);
          if (isSfInnerList(member) || member[0] !== true) expect(again.get(key)).toBe(canonical);
        }
      }),
      { numRuns: 1000 },
    );
    fc.assert(check(parseSfList, parseList, serializeSfList), { numRuns: 500 });
    fc.assert(check(parseSfItem, parseItem, serializeSfItem), { numRuns: 500 });
  });

  it('the Signature fast path decodes exactly what the full parser decodes', () => {
    const b64 = fc.string({ unit: fc.constantFrom(...'AQgw+/=_-'.split('')), maxLength: 12 });
    fc.assert(
      fc.property(
        fc.constantFrom('geo', 'sig', 'Geo'),
        b64,
        fc.constantFrom('', ' ', '\t'),
        (label, data, pad) => {
          const text = `${label}=:${data}:${pad}`;
          const fast = attempt(() => Buffer.from(signatureBytes(text, 'geo')).toString('hex'));
          const full = attempt(() => {
            const member = parseSfDictionary(text).get('geo');
            if (member === undefined || !(member[0] instanceof Uint8Array)) throw new Error('absent');
            return Buffer.from(member[0]).toString('hex');
          });
          expect(fast).toEqual(full);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
