import { createHash } from 'node:crypto';
import { contentDigest } from '@geofence/http-sig';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { metricsPayloadSchema, workloadGeoIdSchema } from '../src/index.js';
import {
  fastContentDigest,
  fastValidPayload,
  fastValidWorkloadGeoId,
} from '../src/pipeline/fast-validate.js';

const payload = {
  version: 1,
  agent_name: 'agent-001',
  tpm_public_key_hash: 'a'.repeat(64),
  nonce: Buffer.alloc(32, 7).toString('base64url'),
  timestamp: '2026-11-28T21:00:00.000Z',
  metrics: { cpu: 0.5 },
  geographic_region: { region: 'US', state: 'California', city: 'Santa Clara' },
  location: { lat: 37.3, lon: -122, accuracy: 8.5, quality: 'GNSS', fix_time: '2026-11-28T20:59:59Z' },
  algorithm: 'ecdsa-p256-sha256',
  signature: 'A'.repeat(86),
};
const geo = {
  client_workload_id: 'agent-001',
  client_workload_location: { region: 'US', state: 'California', city: 'Santa Clara' },
  client_workload_location_type: 'geographic-region',
  client_workload_location_quality: 'GNSS',
  client_type: 'thick',
};

/** Mutate one member at a random path to a random JSON value, or delete it. */
function mutations(base: Record<string, unknown>) {
  const paths: string[][] = [];
  const walk = (o: Record<string, unknown>, p: string[]) => {
    for (const [k, v] of Object.entries(o)) {
      paths.push([...p, k]);
      if (v && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, [...p, k]);
    }
  };
  walk(base, []);
  return fc
    .tuple(
      fc.constantFrom(...paths),
      fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
      fc.string({ maxLength: 8 }),
    )
    .map(([path, value, extraKey]) => {
      const copy = structuredClone(base);
      let o = copy as Record<string, unknown>;
      for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
      const last = path[path.length - 1]!;
      if (value === undefined) delete o[last];
      else o[last] = value;
      if (extraKey === 'x') o.extra = 1;
      return JSON.parse(JSON.stringify(copy));
    });
}

describe('fast paths are sound subsets of the zod schemas', () => {
  it('accept the canonical examples', () => {
    expect(fastValidPayload(payload)).toBe(true);
    expect(fastValidWorkloadGeoId(geo)).toBe(true);
  });
  it('payload: fast accept ⇒ zod accepts the same value unchanged', () => {
    fc.assert(
      fc.property(mutations(payload), (v) => {
        if (fastValidPayload(v)) {
          const r = metricsPayloadSchema.safeParse(v);
          expect(r.success).toBe(true);
          expect(r.data).toEqual(v);
        }
      }),
      { numRuns: 500 },
    );
  });
  it('Workload-Geo-ID: fast accept ⇒ zod accepts', () => {
    fc.assert(
      fc.property(mutations(geo), (v) => {
        if (fastValidWorkloadGeoId(v)) expect(workloadGeoIdSchema.safeParse(v).success).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
  it('Content-Digest fast path agrees with the full check', () => {
    const body = Buffer.from('{"a":1}');
    expect(fastContentDigest(contentDigest(body), body)).toBe(true);
    expect(fastContentDigest(contentDigest(Buffer.from('{"a":2}')), body)).toBe(false);
    expect(
      fastContentDigest(`sha-512=:${createHash('sha512').update(body).digest('base64')}:`, body),
    ).toBeUndefined();
    expect(fastContentDigest(`${contentDigest(body)}, sha-512=:AA==:`, body)).toBeUndefined();
  });
});
