import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  keyIdFromSpki,
  keyIdOfPublic,
  makeCredential,
  marshalAttest,
  marshalPublic,
  marshalSignature,
  objectName,
  parseAttest,
  parsePublic,
  parseSignature,
  parseTpmtPublic,
  TpmWireError,
  verifyCertify,
  verifyQuote,
  verifyTpmSignature,
} from '../src/index.js';
import { fixture } from './helpers.js';

const PUBS = ['ek-rsa', 'ek-ecc', 'ak-rsa', 'ak-rsapss', 'ak-ecc', 'app-ecc', 'app-rsa'].map((k) =>
  fixture(`${k}.pub`),
);
const ATTESTS = ['certify', 'quote'].flatMap((t) =>
  ['ak-rsa', 'ak-rsapss', 'ak-ecc'].map((k) => fixture(`${t}-${k}.attest`)),
);
const SIGS = ['certify', 'quote'].flatMap((t) =>
  ['ak-rsa', 'ak-rsapss', 'ak-ecc'].map((k) => fixture(`${t}-${k}.sig`)),
);
const RUNS = { numRuns: 400 };

/** Any thrown value must be a TpmWireError; returns the parse result or undefined. */
function onlyTpmWireError<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof TpmWireError)) throw e;
    expect(typeof e.code).toBe('string');
    return undefined;
  }
}

/** Inputs derived from real structures: truncated, extended, byte-mutated, or pure random. */
function inputs(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const seed = fc.constantFrom(...seeds);
  return fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    seed.chain((s) => fc.nat(s.length).map((n) => s.subarray(0, n))),
    fc
      .tuple(seed, fc.uint8Array({ minLength: 1, maxLength: 64 }))
      .map(([s, extra]) => new Uint8Array([...s, ...extra])),
    fc
      .tuple(
        seed,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      )
      .map(([s, muts]) => {
        const c = Uint8Array.from(s);
        for (const [pos, val] of muts) c[pos % c.length] = val;
        return c;
      }),
  );
}

describe('fuzz: parsers throw only TpmWireError and round-trip what they accept', () => {
  it('parsePublic / parseTpmtPublic / conversions', () => {
    fc.assert(
      fc.property(inputs(PUBS), (bytes) => {
        const pub = onlyTpmWireError(() => parsePublic(bytes));
        if (pub) {
          expect(Buffer.from(marshalPublic(pub)).equals(Buffer.from(bytes))).toBe(true);
          onlyTpmWireError(() => keyIdOfPublic(pub));
          onlyTpmWireError(() => objectName(pub));
        }
        onlyTpmWireError(() => parseTpmtPublic(bytes));
        onlyTpmWireError(() => keyIdFromSpki(bytes));
      }),
      RUNS,
    );
  });

  it('parseAttest', () => {
    fc.assert(
      fc.property(inputs(ATTESTS), (bytes) => {
        const a = onlyTpmWireError(() => parseAttest(bytes));
        if (a) expect(parseAttest(marshalAttest(a))).toEqual(a);
      }),
      RUNS,
    );
  });

  it('parseSignature and verifyTpmSignature', () => {
    const ak = parsePublic(fixture('ak-ecc.pub'));
    fc.assert(
      fc.property(inputs(SIGS), (bytes) => {
        const s = onlyTpmWireError(() => parseSignature(bytes));
        if (s) expect(Buffer.from(marshalSignature(s)).equals(Buffer.from(bytes))).toBe(true);
        const ok = onlyTpmWireError(() => verifyTpmSignature(ATTESTS[0]!, bytes, ak));
        if (ok !== undefined) expect(ok).toBe(false);
      }),
      RUNS,
    );
  });

  it('verifyCertify / verifyQuote / makeCredential on hostile input', () => {
    const akPublic = fixture('ak-ecc.pub');
    const objectPublic = fixture('app-ecc.pub');
    fc.assert(
      fc.property(inputs(ATTESTS), inputs(SIGS), inputs(PUBS), (attest, signature, pub) => {
        const q = { attest, signature, akPublic, qualifyingData: new Uint8Array(4) };
        expect(onlyTpmWireError(() => verifyCertify({ ...q, objectPublic }))).toBeUndefined();
        expect(onlyTpmWireError(() => verifyQuote({ ...q, pcrValues: {} }))).toBeUndefined();
        onlyTpmWireError(() => verifyCertify({ ...q, akPublic: pub, objectPublic: pub }));
        onlyTpmWireError(() =>
          makeCredential({ ekPublic: pub, objectName: objectName(akPublic), secret: attest.subarray(0, 16) }),
        );
      }),
      { numRuns: 200 },
    );
  });
});
