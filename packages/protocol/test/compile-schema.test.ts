import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  compileSchemaCheck,
  LOCATION_QUALITIES,
  metricsPayloadSchema,
  nonceBatchResponseSchema,
  nonceResponseSchema,
  PAYLOAD_ALGORITHMS,
  workloadGeoIdSchema,
} from '../src/index.js';

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const isoTime = fc
  .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2999-12-31T23:59:59Z'), noInvalidDate: true })
  .chain((d) =>
    fc.constantFrom(
      d.toISOString(),
      d.toISOString().replace('.', ',').replace(/,\d+/, ''),
      `${d.toISOString().slice(0, 19)}+02:00`,
    ),
  );
const place = fc.string({ maxLength: 20 });
/** Metrics as agents send them: any JSON object (no `__proto__` member, which zod's copy drops). */
const metrics = fc.dictionary(
  fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 5 },
);

/** Valid payloads of every shape the schema allows. */
const validPayload = fc.record(
  {
    version: fc.constant(1),
    agent_name: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
    tpm_public_key_hash: hex64,
    nonce: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64url')),
    timestamp: isoTime,
    metrics,
    geographic_region: fc.record({ region: place, state: place, city: place }, { requiredKeys: ['region'] }),
    location: fc.record(
      {
        lat: fc.double({ min: -90, max: 90, noNaN: true }),
        lon: fc.double({ min: -180, max: 180, noNaN: true }),
        accuracy: fc.double({ min: 0, max: 1e6, noNaN: true }),
        quality: fc.constantFrom(...LOCATION_QUALITIES),
        fix_time: isoTime,
        sensor_id_hash: hex64,
      },
      { requiredKeys: ['lat', 'lon', 'quality'] },
    ),
    algorithm: fc.constantFrom(...PAYLOAD_ALGORITHMS),
    signature: fc.stringMatching(/^[A-Za-z0-9_-]{16,100}$/),
  },
  {
    requiredKeys: [
      'version',
      'agent_name',
      'tpm_public_key_hash',
      'nonce',
      'timestamp',
      'metrics',
      'geographic_region',
      'algorithm',
      'signature',
    ],
  },
);

const validGeoId = fc.record(
  {
    client_workload_id: fc.string({ minLength: 1, maxLength: 30 }),
    client_workload_location: fc.record(
      {
        region: place,
        state: place,
        city: place,
        lat: fc.double({ min: -90, max: 90, noNaN: true }),
        lon: fc.double({ min: -180, max: 180, noNaN: true }),
        accuracy: fc.double({ min: 0, max: 1e6, noNaN: true }),
      },
      { requiredKeys: ['region'] },
    ),
    client_workload_location_type: fc.constantFrom('geographic-region', 'precise'),
    client_workload_location_quality: fc.constantFrom(...LOCATION_QUALITIES),
    client_type: fc.string({ maxLength: 64 }),
  },
  {
    requiredKeys: [
      'client_workload_id',
      'client_workload_location',
      'client_workload_location_type',
      'client_workload_location_quality',
    ],
  },
);

/** Values near the edge of the schema: strings, numbers and objects a mutation may put anywhere. */
const nasty = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    undefined,
    null,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    -0,
    91,
    -180.0000001,
    1e308,
    '',
    'x'.repeat(257),
    'A'.repeat(15),
    '2026-02-30T00:00:00Z',
    '2026-11-28T21:00:00',
    'GNSS',
    'precise',
    2,
    Object.create(null),
    [],
    new Date(0),
    JSON.parse('{"__proto__":1}'),
  ),
);

/** One mutation of a valid value: a member set to a nasty value, deleted, or an extra member added. */
function mutated(valid: fc.Arbitrary<Record<string, unknown>>) {
  return fc
    .tuple(valid, fc.nat(), nasty, fc.constantFrom('set', 'delete', 'extra'), fc.string({ maxLength: 6 }))
    .map(([base, pick, value, op, extra]) => {
      const v = structuredClone(base);
      const paths: Array<[Record<string, unknown>, string]> = [];
      const walk = (o: Record<string, unknown>) => {
        for (const [k, x] of Object.entries(o)) {
          paths.push([o, k]);
          if (x && typeof x === 'object' && !Array.isArray(x)) walk(x as Record<string, unknown>);
        }
      };
      walk(v);
      const [o, k] = paths[pick % paths.length]!;
      if (op === 'delete') delete o[k];
      else if (op === 'set') o[k] = value;
      else o[extra] = value;
      return v;
    });
}

/** As they arrive: JSON.parse of the text (fast-check records have a null prototype). */
const wire = <T>(a: fc.Arbitrary<T>) =>
  a.map((v) => JSON.parse(JSON.stringify(v)) as Record<string, unknown>);

const cases: Array<[string, z.ZodType, fc.Arbitrary<Record<string, unknown>>]> = [
  ['metricsPayloadSchema', metricsPayloadSchema, wire(validPayload)],
  ['workloadGeoIdSchema', workloadGeoIdSchema, wire(validGeoId)],
  [
    'nonceResponseSchema',
    nonceResponseSchema,
    wire(
      fc.record({
        nonce: fc
          .uint8Array({ minLength: 32, maxLength: 32 })
          .map((b) => Buffer.from(b).toString('base64url')),
        expires_at: isoTime,
        expires_in: fc.integer({ min: 1, max: 1e6 }),
      }),
    ),
  ],
  [
    'nonceBatchResponseSchema',
    nonceBatchResponseSchema,
    wire(
      fc.record({
        nonces: fc.array(
          fc.record({
            nonce: fc
              .uint8Array({ minLength: 32, maxLength: 32 })
              .map((b) => Buffer.from(b).toString('base64url')),
            expires_at: isoTime,
          }),
          { minLength: 1, maxLength: 3 },
        ),
        expires_in: fc.integer({ min: 1, max: 1e6 }),
      }),
    ),
  ],
];

describe('compileSchemaCheck: compiled from the zod schema, sound and complete on valid data', () => {
  for (const [name, schema, valid] of cases) {
    const check = compileSchemaCheck(schema);
    it(`${name}: every valid value passes (and zod agrees)`, () => {
      fc.assert(
        fc.property(valid, (v) => {
          expect(schema.safeParse(v).success).toBe(true);
          expect(check(v)).toBe(true);
        }),
        { numRuns: 500 },
      );
    });
    it(`${name}: check(v) ⇒ zod accepts v unchanged`, () => {
      fc.assert(
        fc.property(mutated(valid), (v) => {
          if (!check(v)) return;
          const r = schema.safeParse(v);
          expect(r.success).toBe(true);
          expect(r.data).toStrictEqual(v);
        }),
        { numRuns: 2000 },
      );
    });
  }

  it('a schema node it does not understand makes it answer false (zod decides)', () => {
    expect(compileSchemaCheck(z.string().transform((s) => s.trim()))('a')).toBe(false);
    expect(compileSchemaCheck(z.string().refine((s) => s !== 'b'))('a')).toBe(false);
    expect(compileSchemaCheck(z.union([z.string(), z.number()]))('a')).toBe(false);
    expect(compileSchemaCheck(z.string().default('x'))('a')).toBe(false);
    expect(compileSchemaCheck(z.coerce.number())(1)).toBe(false);
    expect(compileSchemaCheck(z.email())('a@b.example')).toBe(false);
    expect(compileSchemaCheck(z.strictObject({ a: z.string(), b: z.bigint() }))({ a: 'x', b: 1n })).toBe(
      false,
    );
    expect(compileSchemaCheck(z.object({ a: z.string() }).passthrough())({ a: 'x' })).toBe(false);
    // …while the nodes it knows still pass.
    expect(compileSchemaCheck(z.strictObject({ a: z.string().max(1) }))({ a: 'x' })).toBe(true);
  });

  it('an object zod would copy differently is left to zod', () => {
    const check = compileSchemaCheck(z.strictObject({ m: z.record(z.string(), z.unknown()) }));
    expect(check({ m: { a: 1 } })).toBe(true);
    expect(check({ m: JSON.parse('{"__proto__":1}') })).toBe(false);
    expect(check({ m: Object.create(null) })).toBe(false);
    expect(check(Object.assign(Object.create(null), { m: {} }))).toBe(false);
    expect(check({ m: { [Symbol('s')]: 1 } })).toBe(false);
  });
});
