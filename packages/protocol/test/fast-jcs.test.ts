import canonicalizeImport from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fastJcs } from '../src/fast-jcs.js';
import { jcs, payloadSigningInput } from '../src/index.js';

const canonicalize = canonicalizeImport as unknown as (input: unknown) => string | undefined;

/** Strings with the awkward parts: quotes, backslashes, controls, lone and paired surrogates, U+2028. */
const nastyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({
    unit: fc.constantFrom(
      '"',
      '\\',
      '\u0000',
      '\u001f',
      '\u007f',
      '\ud800',
      '\udc00',
      '\u2028',
      'a',
      'é',
      '1',
      '_',
    ),
    maxLength: 8,
  }),
  fc.constantFrom('__proto__', 'toJSON', 'constructor', '10', '9', '', '-0'),
);
const nastyNumber = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constantFrom(-0, 5e-324, 1e21, 1e-7, 2 ** 53, 0.1 + 0.2),
);

/** What JSON.parse can produce, built through JSON text so `__proto__` members are own data properties. */
const jsonValue = fc
  .letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      nastyString,
      nastyNumber,
      fc.boolean(),
      fc.constant(null),
      tie('array'),
      tie('object'),
    ),
    array: fc.array(tie('value'), { maxLength: 5 }),
    object: fc.dictionary(nastyString, tie('value'), { maxKeys: 6 }),
  }))
  .value.map((v) => JSON.parse(JSON.stringify(v)) as unknown);

describe('fastJcs', () => {
  it('is byte-identical to canonicalize for parsed JSON', () => {
    fc.assert(
      fc.property(jsonValue, (v) => {
        const fast = fastJcs(v);
        // The only parsed-JSON input left to canonicalize is an object with a `toJSON` member.
        if (fast === undefined) expect(JSON.stringify(v)).toContain('"toJSON":');
        else expect(fast).toBe(canonicalize(v));
        expect(jcs(v)).toBe(canonicalize(v));
      }),
      { numRuns: 500 },
    );
  });

  it('skipKey equals canonicalize of the object without that member (payload signing input)', () => {
    fc.assert(
      fc.property(fc.dictionary(nastyString, jsonValue, { maxKeys: 8 }), nastyString, (raw, extra) => {
        const o = JSON.parse(JSON.stringify({ ...raw, signature: extra })) as Record<string, unknown>;
        const { signature: _s, ...rest } = o;
        const fast = fastJcs(o, 'signature');
        if (fast !== undefined) expect(fast).toBe(canonicalize(rest));
        expect(Buffer.from(payloadSigningInput(o)).toString('utf8')).toBe(canonicalize(rest));
      }),
      { numRuns: 300 },
    );
  });

  it('jcs equals canonicalize also for values outside the fast path (and throws where it throws)', () => {
    const date = new Date(0);
    const withToJson = { toJSON: () => ({ b: 1, a: [2] }) };
    const classy = new (class K {
      z = 1;
      a = 'x';
    })();
    const holes = [1, undefined, 3];
    // A real hole: canonicalize's reduce skips it ("[,1]"), unlike an undefined element.
    // biome-ignore lint/suspicious/noSparseArray: the case under test
    const sparse = [, 1];
    const withUndefined = { b: undefined, a: 1, c: Symbol('s') };
    const nullProto = Object.assign(Object.create(null) as object, { b: 1, a: 2 });
    for (const v of [
      date,
      withToJson,
      classy,
      holes,
      sparse,
      { a: sparse },
      withUndefined,
      nullProto,
      { toJSON: 'not a function' },
    ]) {
      expect(fastJcs(v) === undefined || fastJcs(v) === canonicalize(v)).toBe(true);
      expect(jcs(v)).toBe(canonicalize(v));
    }
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, { a: [Number.NEGATIVE_INFINITY] }]) {
      expect(fastJcs(bad)).toBeUndefined();
      expect(() => canonicalize(bad)).toThrow();
      expect(() => jcs(bad)).toThrow();
    }
  });

  it('falls back on deep nesting instead of overflowing differently', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 1000; i++) deep = [deep];
    expect(fastJcs(deep)).toBeUndefined();
    expect(jcs(deep)).toBe(canonicalize(deep));
  });
});
