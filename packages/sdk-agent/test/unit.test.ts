import { generateKeyPairSync } from 'node:crypto';
import { createSigner, verifyRequest } from '@geofence/http-sig';
import {
  GeofenceError,
  keyidOfPublicKey,
  METRICS_SIGNATURE_COMPONENTS,
  metricsPayloadSchema,
  VALIDATION_TYPES,
  verifyPayloadSignature,
  workloadGeoIdSchema,
} from '@geofence/verifier';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GeofenceRejection } from '../src/errors.js';
import { staticLocation } from '../src/location/static.js';
import { asciiJson, buildMetricsRequest, workloadGeoId } from '../src/message.js';
import { backoffDelay, DEFAULT_RETRY } from '../src/retry.js';

describe('GeofenceRejection', () => {
  it('carries the aligned problem members', () => {
    for (const vt of VALIDATION_TYPES) {
      const e = new GeofenceError(vt, undefined, { details: { a: 1 } });
      const body = e.toProblem({ rejectedBy: 'collector', requestId: 'r1' });
      const r = new GeofenceRejection(e.status, body);
      expect(r).toMatchObject({
        status: e.status,
        validationType: vt,
        rejectedBy: 'collector',
        requestId: 'r1',
        details: { a: 1 },
      });
      expect(r.code).toBe('rejected');
    }
  });

  it('never throws on arbitrary answer bodies and only trusts aligned problems', () => {
    fc.assert(
      fc.property(fc.integer({ min: 400, max: 499 }), fc.anything(), (status, body) => {
        const r = new GeofenceRejection(status, body);
        expect(r.status).toBe(status);
        if (r.problem === undefined) expect(r.validationType).toBe('unknown');
      }),
      { numRuns: 300 },
    );
  });
});

describe('message assembly', () => {
  it('asciiJson is the same JSON value, ASCII only (fuzz)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = asciiJson(v);
        expect(/^[\x20-\x7e]*$/.test(text)).toBe(true);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 300 },
    );
  });

  it('Workload-Geo-ID matches the verifier schema for any configured place', async () => {
    const place = fc.string({ minLength: 1, maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(
        place,
        fc.option(place, { nil: undefined }),
        fc.option(place, { nil: undefined }),
        async (region, state, city) => {
          const obs = await staticLocation({
            region,
            ...(state ? { state } : {}),
            ...(city ? { city } : {}),
          }).current();
          const header = asciiJson(workloadGeoId('agent-001', obs, 'thick'));
          expect(workloadGeoIdSchema.parse(JSON.parse(header)).client_workload_location).toEqual(
            obs.geographicRegion,
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  it('builds exactly the SPEC §6.3 signature (software key; the TPM is not the subject here)', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyid = keyidOfPublicKey(publicKey);
    const signer = createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid });
    const now = new Date();
    const nonce = {
      nonce: 'A'.repeat(43),
      expires_at: new Date(now.getTime() + 30_000).toISOString(),
      expires_in: 30,
    };
    const req = await buildMetricsRequest({
      agentName: 'agent-001',
      keyid,
      signer,
      nonce,
      observation: await staticLocation({ region: 'EU', state: 'Germany', city: 'München' }).current(),
      metrics: { cpu: 1 },
      clientType: 'thick',
      path: '/base/metrics',
      origin: 'https://gw.example',
      now,
      validitySeconds: 300,
    });
    const payload = metricsPayloadSchema.parse(JSON.parse(Buffer.from(req.body).toString('utf8')));
    expect(verifyPayloadSignature(payload, publicKey)).toBe(true);
    expect(req.headers['signature-input']).toMatch(
      /^geo=\("@method" "@path" "content-type" "content-digest" "workload-geo-id"\);created=\d+;expires=\d+;keyid="[0-9a-f]{64}";alg="ecdsa-p256-sha256";nonce="A{43}";tag="geofence\/v1"$/,
    );
    const v = await verifyRequest(
      { method: 'POST', url: 'https://other.example/base/metrics', headers: req.headers, body: req.body },
      {
        keyLookup: async () => publicKey,
        requiredComponents: METRICS_SIGNATURE_COMPONENTS,
        tag: 'geofence/v1',
      },
    );
    // Validity is capped by the nonce's remaining life (30 s), not the requested 300 s.
    expect(v.expires! - v.created!).toBeLessThanOrEqual(30);
    expect(v.nonce).toBe(payload.nonce);
    expect(JSON.parse(req.headers['workload-geo-id']!).client_workload_location.city).toBe('München');
  });
});

describe('backoff', () => {
  it('stays within [d/2, d] of the capped exponential and honours Retry-After', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (retry, r) => {
          const d = Math.min(DEFAULT_RETRY.maxDelayMs, DEFAULT_RETRY.baseDelayMs * 2 ** (retry - 1));
          const x = backoffDelay(DEFAULT_RETRY, retry, undefined, () => r);
          expect(x).toBeGreaterThanOrEqual(d / 2);
          expect(x).toBeLessThanOrEqual(d);
        },
      ),
      { numRuns: 300 },
    );
    expect(backoffDelay(DEFAULT_RETRY, 1, 3000, () => 0)).toBe(3000);
    expect(backoffDelay(DEFAULT_RETRY, 1, 10 ** 9, () => 0)).toBe(DEFAULT_RETRY.maxDelayMs);
  });
});
