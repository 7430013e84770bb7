import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64url, hasDuplicateJsonKeys } from '../src/index.js';

/** JSON texts, compact or not, with and without duplicate member names (escaped spellings included). */
const name = fc.constantFrom('a', 'b', '\\u0061', '__proto__', 'x y', '', '\\\\', '\\"', 'a\\\\\\"', ':');
const value: fc.Arbitrary<string> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('1', '1.0', '-0', '"s"', 'true', 'null', '"\\u0041"', '1e2', '":"', '"\\\\"', '"\\":"'),
    tie('arr'),
    tie('obj'),
  ),
  arr: fc.array(tie('v'), { maxLength: 3 }).map((xs) => `[${xs.join(',')}]`),
  obj: fc
    .tuple(
      fc.array(fc.tuple(name, tie('v')), { maxLength: 4 }),
      fc.constantFrom('', ' ', '\n', '\t', '\r\n '),
    )
    .map(([members, ws]) => `{${members.map(([k, v]) => `${ws}"${k}"${ws}:${ws}${v}`).join(',')}}`),
})).v as fc.Arbitrary<string>;

describe('hasDuplicateJsonKeys with the parsed value (member counting)', () => {
  it('gives the same answer as the scan of the text alone', () => {
    fc.assert(
      fc.property(value, (text) => {
        expect(hasDuplicateJsonKeys(text, JSON.parse(text))).toBe(hasDuplicateJsonKeys(text));
      }),
      { numRuns: 500 },
    );
  });

  it('answers for compact JSON.stringify output, with and without duplicates', () => {
    const compact = JSON.stringify({ a: 1, b: { c: [1, { d: 2 }] } });
    expect(hasDuplicateJsonKeys(compact, JSON.parse(compact))).toBe(false);
    const dup = '{"a":1,"b":{"c":1,"c":1}}';
    expect(hasDuplicateJsonKeys(dup, JSON.parse(dup))).toBe(true);
    const escaped = '{"a":1,"\\u0061":1}';
    expect(hasDuplicateJsonKeys(escaped, JSON.parse(escaped))).toBe(true);
    let deep = '1';
    for (let i = 0; i < 5000; i++) deep = `{"a":${deep}}`;
    expect(hasDuplicateJsonKeys(deep, JSON.parse(deep))).toBe(false);
  });
});

describe('decodeBase64url', () => {
  /** The previous definition: decode, re-encode, compare. */
  function reference(text: string): Uint8Array | undefined {
    if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return undefined;
    const bytes = Buffer.from(text, 'base64url');
    return bytes.toString('base64url') === text ? bytes : undefined;
  }

  it('accepts and rejects exactly what decode-and-re-encode does', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ '.split('');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(fc.constantFrom(...alphabet), { maxLength: 12 }).map((cs) => cs.join('')),
          fc.uint8Array({ maxLength: 70 }).map((b) => Buffer.from(b).toString('base64url')),
        ),
        (text) => {
          const got = decodeBase64url(text);
          const want = reference(text);
          expect(got === undefined).toBe(want === undefined);
          if (got !== undefined && want !== undefined)
            expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});
