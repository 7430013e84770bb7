import { sign as cryptoSign, generateKeyPairSync } from 'node:crypto';
import { isLowS, toLowS } from '@geofence/http-sig';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeBase64url,
  type MetricsPayload,
  metricsPayloadSchema,
  nonceResponseSchema,
  payloadSigningInput,
  signPayload,
  verifyPayloadSignature,
  workloadGeoIdSchema,
} from '../src/index.js';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

const ecSigner = {
  alg: 'ecdsa-p256-sha256',
  sign: async (d: Uint8Array) =>
    toLowS(cryptoSign('sha256', d, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' })),
};
const rsaSigner = {
  alg: 'rsa-v1_5-sha256',
  sign: async (d: Uint8Array) => cryptoSign('sha256', d, rsa.privateKey),
};

const base = {
  version: 1 as const,
  agent_name: 'agent-001',
  tpm_public_key_hash: 'a'.repeat(64),
  nonce: Buffer.alloc(32, 7).toString('base64url'),
  timestamp: '2026-11-28T21:00:00.000Z',
  metrics: { cpu: 0.5, nested: { b: [1, 'x'], a: null } },
  geographic_region: { region: 'US', state: 'California', city: 'Santa Clara' },
  location: { lat: 37.354, lon: -121.955, accuracy: 8.5, quality: 'GNSS' as const },
};

describe('payload signature malleability', () => {
  it('accepts the low-s ECDSA signature and refuses its (r, n − s) twin', async () => {
    const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    for (let i = 0; i < 8; i++) {
      const p = await signPayload({ ...base, metrics: { i } }, ecSigner);
      const sig = decodeBase64url(p.signature)!;
      expect(isLowS(sig)).toBe(true);
      const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`);
      const twin = Buffer.concat([
        Buffer.from(sig.subarray(0, 32)),
        Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'),
      ]);
      expect(verifyPayloadSignature(p, ec.publicKey)).toBe(true);
      expect(verifyPayloadSignature({ ...p, signature: twin.toString('base64url') }, ec.publicKey)).toBe(
        false,
      );
      // toLowS maps the twin back to the one accepted signature.
      expect(Buffer.from(toLowS(twin)).equals(Buffer.from(sig))).toBe(true);
    }
  });
});

describe('payloadSigningInput', () => {
  it('is the JCS of the payload without signature', () => {
    const text = Buffer.from(payloadSigningInput({ b: 1, a: 'é', signature: 'zz' })).toString('utf8');
    expect(text).toBe('{"a":"é","b":1}');
  });
  it('does not depend on key order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        expect(Buffer.from(payloadSigningInput(reversed))).toEqual(Buffer.from(payloadSigningInput(obj)));
      }),
      { numRuns: 200 },
    );
  });
});

describe('verifyPayloadSignature', () => {
  it('accepts ECDSA P-256 raw r||s and RSA PKCS#1 v1.5 signatures', async () => {
    const p1 = await signPayload(base, ecSigner);
    expect(metricsPayloadSchema.parse(p1)).toEqual(p1);
    expect(verifyPayloadSignature(p1, ec.publicKey)).toBe(true);
    const p2 = await signPayload(base, rsaSigner);
    expect(verifyPayloadSignature(p2, rsa.publicKey)).toBe(true);
  });

  it('covers every field', async () => {
    const p = await signPayload(base, ecSigner);
    const tampered: Array<Record<string, unknown>> = [
      { ...p, agent_name: 'agent-002' },
      { ...p, metrics: { cpu: 0.6, nested: p.metrics.nested } },
      { ...p, geographic_region: { region: 'EU', state: 'Berlin', city: 'Berlin' } },
      { ...p, location: { ...p.location, lat: 52.5 } },
      { ...p, timestamp: '2026-11-28T21:00:01.000Z' },
      { ...p, nonce: Buffer.alloc(32, 8).toString('base64url') },
      { ...p, extra: 1 },
    ];
    for (const t of tampered) expect(verifyPayloadSignature(t as MetricsPayload, ec.publicKey)).toBe(false);
    const { location: _l, ...withoutLocation } = p;
    expect(verifyPayloadSignature(withoutLocation, ec.publicKey)).toBe(false);
  });

  it('rejects algorithm/key confusion, wrong curves and malformed encodings', async () => {
    const p = await signPayload(base, ecSigner);
    expect(verifyPayloadSignature(p, rsa.publicKey)).toBe(false);
    expect(verifyPayloadSignature({ ...p, algorithm: 'rsa-v1_5-sha256' }, ec.publicKey)).toBe(false);
    expect(verifyPayloadSignature({ ...p, algorithm: 'rsa-pss-sha512' }, ec.publicKey)).toBe(false);
    expect(verifyPayloadSignature(p, ec384.publicKey)).toBe(false);
    expect(verifyPayloadSignature({ ...p, signature: `${p.signature}=` }, ec.publicKey)).toBe(false);
    const der = cryptoSign('sha256', payloadSigningInput(p), ec.privateKey).toString('base64url');
    expect(verifyPayloadSignature({ ...p, signature: der }, ec.publicKey)).toBe(false);
    const pr = await signPayload(base, rsaSigner);
    expect(verifyPayloadSignature(pr, ec.publicKey)).toBe(false);
  });

  it('never throws on arbitrary signature strings', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.constantFrom('ecdsa-p256-sha256', 'rsa-v1_5-sha256', 'x'),
        (sig, algorithm) => {
          expect(verifyPayloadSignature({ ...base, algorithm, signature: sig }, ec.publicKey)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('schemas', () => {
  it('rejects unknown members, bad keyids and bad nonces', async () => {
    const p = await signPayload(base, ecSigner);
    expect(metricsPayloadSchema.safeParse({ ...p, extra: 1 }).success).toBe(false);
    expect(metricsPayloadSchema.safeParse({ ...p, tpm_public_key_hash: 'A'.repeat(64) }).success).toBe(false);
    expect(metricsPayloadSchema.safeParse({ ...p, nonce: 'short' }).success).toBe(false);
    expect(metricsPayloadSchema.safeParse({ ...p, version: 2 }).success).toBe(false);
    expect(metricsPayloadSchema.safeParse({ ...p, metrics: [] }).success).toBe(false);
  });
  it('parses the SPEC examples', () => {
    expect(
      workloadGeoIdSchema.safeParse(
        JSON.parse(
          '{"client_workload_id":"agent-001","client_workload_location":{"region":"US","state":"California","city":"Santa Clara"},"client_workload_location_type":"geographic-region","client_workload_location_quality":"GNSS","client_type":"thick"}',
        ),
      ).success,
    ).toBe(true);
    expect(
      nonceResponseSchema.safeParse({
        nonce: Buffer.alloc(32, 1).toString('base64url'),
        expires_at: '2026-11-28T21:05:00.000Z',
        expires_in: 300,
      }).success,
    ).toBe(true);
  });
  it('base64url decoding is canonical', () => {
    expect([...(decodeBase64url('AQ') ?? [])]).toEqual([1]);
    expect(decodeBase64url('AR')).toBeUndefined();
    expect(decodeBase64url('AQ==')).toBeUndefined();
    expect(decodeBase64url('A+')).toBeUndefined();
  });
});

describe('hasDuplicateJsonKeys', () => {
  it('finds duplicates at any depth, after unescaping', async () => {
    const { hasDuplicateJsonKeys } = await import('../src/index.js');
    expect(hasDuplicateJsonKeys('{"a":1,"b":{"a":2}}')).toBe(false);
    expect(hasDuplicateJsonKeys('{"a":1,"a":2}')).toBe(true);
    expect(hasDuplicateJsonKeys('{"x":{"a":1, "b":[{"c":1,"c":2}]}}')).toBe(true);
    expect(hasDuplicateJsonKeys('{"a":1,"\\u0061":2}')).toBe(true);
    expect(hasDuplicateJsonKeys('{"a":"\\"a\\":","b":["a","a"]}')).toBe(false);
    expect(hasDuplicateJsonKeys('[{"a":1},{"a":1}]')).toBe(false);
    expect(hasDuplicateJsonKeys('{"a" : 1, "a"\n: 2}')).toBe(true);
  });
  it('agrees with a key count on random JSON', async () => {
    const { hasDuplicateJsonKeys } = await import('../src/index.js');
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        const text = JSON.stringify(v);
        expect(hasDuplicateJsonKeys(text)).toBe(false);
        if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
          const k = JSON.stringify(Object.keys(v)[0]);
          expect(hasDuplicateJsonKeys(`${text.slice(0, -1)},${k}:null}`)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
