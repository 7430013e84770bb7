import { compilePolygonList, pointInside } from '@geofence/protocol';
import { booleanPointInPolygon } from '@turf/boolean-point-in-polygon';
import { booleanWithin } from '@turf/boolean-within';
import { circle } from '@turf/circle';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MIN_QUALITY,
  evaluateGeoPolicy,
  foldPlaceName,
  type GeoPolicy,
  geoPolicySchema,
  LOCATION_QUALITIES,
  labelPoint,
} from '../src/index.js';

const allow: GeoPolicy = {
  allow: [
    { region: 'US', state: 'California', city: 'Santa Clara' },
    { region: 'US', state: 'Texas', city: 'Austin' },
    { region: 'DE', state: 'Bayern' },
    { region: 'FR' },
    { region: 'DE', state: 'Baden-Württemberg', city: 'Straße' },
  ],
};

describe('region hierarchy', () => {
  it('follows the SPEC examples', () => {
    const ok = (region: Record<string, string>) => evaluateGeoPolicy(allow, { region }).allowed;
    expect(ok({ region: 'US', state: 'California', city: 'Santa Clara' })).toBe(true);
    expect(ok({ region: 'US', state: 'Texas', city: 'Santa Clara' })).toBe(false);
    expect(ok({ region: 'US', state: 'California', city: 'Austin' })).toBe(false);
    expect(ok({ region: 'US', state: 'California' })).toBe(false);
    expect(ok({ region: 'US' })).toBe(false);
    expect(ok({ region: 'FR', state: 'Île-de-France', city: 'Paris' })).toBe(true);
    expect(ok({ region: 'FR' })).toBe(true);
    expect(ok({ region: 'DE', state: 'Bayern', city: 'München' })).toBe(true);
    expect(ok({ region: 'DE', state: 'Berlin', city: 'Berlin' })).toBe(false);
    expect(ok({ region: 'EU', state: 'Germany', city: 'Berlin' })).toBe(false);
  });

  it('compares after NFC and case folding, never matching empty fields', () => {
    const ok = (region: Record<string, string>) => evaluateGeoPolicy(allow, { region }).allowed;
    expect(ok({ region: 'us', state: 'CALIFORNIA', city: 'santa clara' })).toBe(true);
    // decomposed ü (u + U+0308) equals the precomposed one after NFC
    expect(ok({ region: 'de', state: 'Baden-Wu\u0308rttemberg', city: 'STRASSE' })).toBe(true);
    expect(ok({ region: 'US', state: 'California', city: '' })).toBe(false);
    expect(ok({ region: '', state: 'California', city: 'Santa Clara' })).toBe(false);
    expect(ok({ region: 'US', state: 'California', city: 'Santa Clara ' })).toBe(false);
    expect(evaluateGeoPolicy(allow, {}).allowed).toBe(false);
  });

  it('property: an observation is allowed iff some entry is a prefix of it (folded)', () => {
    const name = fc.constantFrom(
      'US',
      'us',
      'DE',
      'FR',
      'California',
      'Texas',
      'Austin',
      'Bayern',
      'x',
      'Paris',
    );
    const entry = fc
      .record({ region: name, state: name, city: name }, { requiredKeys: ['region'] })
      .filter((e) => e.city === undefined || e.state !== undefined);
    const obs = fc.record({
      region: fc.option(name, { nil: undefined }),
      state: fc.option(name, { nil: undefined }),
      city: fc.option(name, { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 6 }), obs, (entries, o) => {
        const eq = (a: string | undefined, b: string | undefined) =>
          a !== undefined && b !== undefined && foldPlaceName(a) === foldPlaceName(b);
        const expected = entries.some(
          (e) =>
            eq(e.region, o.region) &&
            (e.state === undefined || eq(e.state, o.state)) &&
            (e.city === undefined || eq(e.city, o.city)),
        );
        expect(evaluateGeoPolicy({ allow: entries }, { region: o }).allowed).toBe(expected);
      }),
      { numRuns: 400 },
    );
  });
});

// A 0.2° x 0.2° square around Santa Clara and a MultiPolygon with a hole.
const square: GeoPolicy = {
  fences: [
    {
      type: 'Polygon',
      coordinates: [
        [
          [-122.1, 37.2],
          [-121.9, 37.2],
          [-121.9, 37.4],
          [-122.1, 37.4],
          [-122.1, 37.2],
        ],
      ],
    },
  ],
};
const squareFeature = {
  type: 'Feature' as const,
  properties: {},
  geometry: square.fences![0] as { type: 'Polygon'; coordinates: number[][][] },
};

describe('fences', () => {
  it('requires the point strictly inside and the whole accuracy circle inside', () => {
    const ok = (lat: number, lon: number, accuracy?: number) =>
      evaluateGeoPolicy(square, { point: { lat, lon, accuracy } }).allowed;
    expect(ok(37.3, -122.0)).toBe(true);
    expect(ok(37.3, -122.0, 5000)).toBe(true);
    expect(ok(37.3, -122.0, 12_000)).toBe(false); // ~11 km to the nearest edge
    expect(ok(37.2, -122.0)).toBe(false); // on the border
    expect(ok(37.3, -121.9)).toBe(false);
    expect(ok(37.2001, -122.0, 5)).toBe(true); // ~11 m from the edge
    expect(ok(37.2001, -122.0, 20)).toBe(false);
    expect(ok(52.52, 13.4)).toBe(false);
    expect(evaluateGeoPolicy(square, {}).allowed).toBe(false);
    expect(evaluateGeoPolicy(square, { point: { lat: Number.NaN, lon: 0 } }).allowed).toBe(false);
  });

  it('handles holes and MultiPolygon features', () => {
    const holed: GeoPolicy = {
      fences: [
        {
          type: 'Feature',
          properties: null,
          geometry: {
            type: 'MultiPolygon',
            coordinates: [
              [
                [
                  [0, 0],
                  [10, 0],
                  [10, 10],
                  [0, 10],
                  [0, 0],
                ],
                [
                  [4, 4],
                  [6, 4],
                  [6, 6],
                  [4, 6],
                  [4, 4],
                ],
              ],
              [
                [
                  [20, 20],
                  [21, 20],
                  [21, 21],
                  [20, 21],
                  [20, 20],
                ],
              ],
            ],
          },
        },
      ],
    };
    const ok = (lat: number, lon: number, accuracy?: number) =>
      evaluateGeoPolicy(holed, { point: { lat, lon, accuracy } }).allowed;
    expect(ok(2, 2)).toBe(true);
    expect(ok(5, 5)).toBe(false); // in the hole
    expect(ok(3.99, 5, 10)).toBe(true);
    expect(ok(3.99, 5, 5000)).toBe(false); // circle reaches into the hole
    expect(ok(20.5, 20.5, 1000)).toBe(true);
    expect(ok(15, 15)).toBe(false);
  });

  it('property: accepted circles are inside the polygon (cross-checked with @turf/circle + booleanWithin)', () => {
    const lon = fc.double({ min: -122.15, max: -121.85, noNaN: true });
    const lat = fc.double({ min: 37.15, max: 37.45, noNaN: true });
    const acc = fc.double({ min: 0, max: 15_000, noNaN: true });
    fc.assert(
      fc.property(lon, lat, acc, (x, y, a) => {
        const allowed = evaluateGeoPolicy(square, { point: { lat: y, lon: x, accuracy: a } }).allowed;
        if (allowed) {
          expect(x > -122.1 && x < -121.9 && y > 37.2 && y < 37.4).toBe(true);
          if (a > 1) {
            const c = circle([x, y], a / 1000, { steps: 64, units: 'kilometers' });
            expect(booleanWithin(c, squareFeature)).toBe(true);
          }
        }
        // distance to the nearest edge (metres, generous spherical scale) comfortably above the
        // accuracy means the engine must accept.
        const dy = Math.min(y - 37.2, 37.4 - y) * 111_000;
        const dx = Math.min(x + 122.1, -121.9 - x) * 111_000 * Math.cos((y * Math.PI) / 180);
        if (Math.min(dx, dy) > a * 1.02 + 1) expect(allowed).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('property: points on the border are never inside; points just outside never are', () => {
    const t = fc.double({ min: 0, max: 1, noNaN: true });
    const side = fc.integer({ min: 0, max: 3 });
    const eps = fc.double({ min: 0, max: 0.01, noNaN: true });
    fc.assert(
      fc.property(t, side, eps, (u, s, e) => {
        const along = -122.1 + u * 0.2;
        const alongLat = 37.2 + u * 0.2;
        const onBorder = [
          [along, 37.2],
          [along, 37.4],
          [-122.1, alongLat],
          [-121.9, alongLat],
        ][s]!;
        const outward = [
          [0, -e],
          [0, e],
          [-e, 0],
          [e, 0],
        ][s]!;
        const [bx, by] = onBorder as [number, number];
        expect(evaluateGeoPolicy(square, { point: { lon: bx, lat: by } }).allowed).toBe(false);
        expect(
          evaluateGeoPolicy(square, { point: { lon: bx + outward[0]!, lat: by + outward[1]! } }).allowed,
        ).toBe(false);
        // just inside but with an accuracy radius larger than the distance to the border
        const inside = { lon: bx - outward[0]! / 2, lat: by - outward[1]! / 2, accuracy: e * 111_000 };
        if (e > 0) expect(evaluateGeoPolicy(square, { point: inside }).allowed).toBe(false);
      }),
      { numRuns: 400 },
    );
  });
});

describe('quality and fix age', () => {
  const policy: GeoPolicy = { min_quality: 'wifi', max_fix_age_seconds: 30 };
  const now = new Date('2026-11-28T21:00:00Z');
  it('enforces minimum quality', () => {
    expect(evaluateGeoPolicy({ min_quality: 'wifi' }, { quality: 'GNSS' }).allowed).toBe(true);
    expect(evaluateGeoPolicy({ min_quality: 'wifi' }, { quality: 'wifi' }).allowed).toBe(true);
    expect(evaluateGeoPolicy({ min_quality: 'wifi' }, { quality: 'ip' }).allowed).toBe(false);
    expect(evaluateGeoPolicy({ min_quality: 'wifi' }, { quality: 'static' }).allowed).toBe(false);
    expect(evaluateGeoPolicy({ min_quality: 'wifi' }, {}).allowed).toBe(false);
    expect(evaluateGeoPolicy({ min_quality: 'wifi' }, { quality: 'bogus' }).allowed).toBe(false);
  });
  it('enforces maximum fix age', () => {
    const at = (fixTime: string | undefined) =>
      evaluateGeoPolicy(policy, { quality: 'GNSS', fixTime, now }).allowed;
    expect(at('2026-11-28T20:59:45Z')).toBe(true);
    expect(at('2026-11-28T20:59:00Z')).toBe(false);
    expect(at('2026-11-28T21:10:00Z')).toBe(false);
    expect(at(undefined)).toBe(false);
    expect(at('not a date')).toBe(false);
  });
  it('refuses dead-reckoning and simulated fixes by default; min_quality can admit them', () => {
    const berlin = {
      region: { region: 'DE', state: 'Berlin' },
      point: { lat: 52.52, lon: 13.405, accuracy: 10 },
    };
    const dePolicy: GeoPolicy = { allow: [{ region: 'DE' }] };
    for (const quality of ['dead-reckoning', 'simulated']) {
      expect(evaluateGeoPolicy(dePolicy, { ...berlin, quality })).toMatchObject({
        allowed: false,
        check: 'quality',
        expected: { min_quality: 'static' },
        received: { quality },
      });
      expect(evaluateGeoPolicy({}, { quality }).allowed).toBe(false);
      expect(evaluateGeoPolicy({ min_quality: 'wifi' }, { quality }).allowed).toBe(false);
    }
    for (const quality of ['GNSS', 'mobile', 'wifi', 'ip', 'static', undefined]) {
      expect(evaluateGeoPolicy(dePolicy, { ...berlin, quality }).allowed).toBe(true);
    }
    expect(evaluateGeoPolicy({ min_quality: 'dead-reckoning' }, { quality: 'dead-reckoning' }).allowed).toBe(
      true,
    );
    expect(evaluateGeoPolicy({ min_quality: 'dead-reckoning' }, { quality: 'simulated' }).allowed).toBe(
      false,
    );
    expect(evaluateGeoPolicy({ min_quality: 'simulated' }, { quality: 'simulated' }).allowed).toBe(true);
    expect(DEFAULT_MIN_QUALITY).toBe('static');
    expect(LOCATION_QUALITIES.indexOf('dead-reckoning')).toBeGreaterThan(
      LOCATION_QUALITIES.indexOf('static'),
    );
  });
  it('refuses a fix dated in the future beyond the clock skew, whatever the policy (fix_in_future)', () => {
    const obs = (fixTime: string, clockSkewSeconds?: number) => ({
      quality: 'GNSS',
      fixTime,
      now,
      ...(clockSkewSeconds === undefined ? {} : { clockSkewSeconds }),
    });
    const yearAhead = '2027-11-28T21:00:00Z';
    for (const p of [{}, { min_quality: 'GNSS' }, policy] as GeoPolicy[]) {
      expect(evaluateGeoPolicy(p, obs(yearAhead))).toMatchObject({
        allowed: false,
        check: 'fix_in_future',
        expected: { clock_skew_seconds: 60, not_after: '2026-11-28T21:01:00.000Z' },
        received: { fix_time: yearAhead },
      });
    }
    expect(evaluateGeoPolicy({}, obs('2026-11-28T21:00:59Z')).allowed).toBe(true); // within 60 s
    expect(evaluateGeoPolicy({}, obs('2026-11-28T21:01:01Z'))).toMatchObject({ check: 'fix_in_future' });
    expect(evaluateGeoPolicy({}, obs('2026-11-28T21:01:01Z', 120)).allowed).toBe(true);
    expect(evaluateGeoPolicy({}, obs('2026-11-28T21:00:11Z', 10))).toMatchObject({ check: 'fix_in_future' });
    // Too old is still fix_age.
    expect(evaluateGeoPolicy(policy, obs('2026-11-28T20:59:00Z'))).toMatchObject({ check: 'fix_age' });
  });
  it('reports the failing check', () => {
    const d = evaluateGeoPolicy(allow, { region: { region: 'EU', state: 'Germany', city: 'Berlin' } });
    expect(d).toMatchObject({ allowed: false, check: 'region', received: { region: 'EU' } });
  });
  it('validates policies', () => {
    expect(geoPolicySchema.safeParse({ allow: [{ region: 'US', city: 'Austin' }] }).success).toBe(false);
    expect(
      geoPolicySchema.safeParse({
        fences: [
          {
            type: 'Polygon',
            coordinates: [
              [
                [0, 0],
                [1, 0],
                [1, 1],
                [0, 1],
              ],
            ],
          },
        ],
      }).success,
    ).toBe(false);
    expect(() => evaluateGeoPolicy({ min_quality: 'best' } as unknown as GeoPolicy, {})).toThrow();
  });
});

describe('region consistency with the reported coordinates (SPEC §5.1)', () => {
  const berlin = { lat: 52.52, lon: 13.405 };
  const santaClara = { lat: 37.354, lon: -121.955 };
  const austin = { lat: 30.267, lon: -97.743 };
  const mid = { lat: 0.5, lon: -30 }; // Atlantic: the table places nothing there
  const sc = { region: 'US', state: 'California', city: 'Santa Clara' };
  const permissive: GeoPolicy = { allow: [{ region: 'US' }, { region: 'EU' }] };

  it('rejects Berlin coordinates with a claimed Santa Clara', () => {
    const d = evaluateGeoPolicy(permissive, { region: sc, point: berlin });
    expect(d).toMatchObject({
      allowed: false,
      check: 'region_mismatch',
      reason: 'Claimed region contradicts the reported coordinates',
      expected: { places_at_point: [{ region: 'DE', state: 'Berlin' }] },
    });
    // Also with no allow list at all: the contradiction alone is a failure.
    expect(evaluateGeoPolicy({}, { region: sc, point: berlin })).toMatchObject({ check: 'region_mismatch' });
  });

  it('allows consistent claims, by ISO code or name, after NFC and case folding', () => {
    const ok = (region: Record<string, string>, point: { lat: number; lon: number }) =>
      evaluateGeoPolicy(permissive, { region, point }).allowed;
    expect(ok(sc, santaClara)).toBe(true);
    expect(ok({ region: 'us', state: 'CALIFORNIA', city: 'santa clara' }, santaClara)).toBe(true);
    expect(ok({ region: 'US', state: 'CA' }, santaClara)).toBe(true);
    expect(ok({ region: 'EU', state: 'Germany', city: 'Berlin' }, berlin)).toBe(true);
    expect(ok({ region: 'EU', state: 'germany' }, berlin)).toBe(true);
    expect(ok({ region: 'DE', state: 'Berlin' }, berlin)).toBe(true);
    expect(ok({ region: 'Germany' }, berlin)).toBe(true);
    expect(ok({ region: 'US' }, santaClara)).toBe(true);
    // A city has no polygon in the table: any city name in the right state is not a contradiction.
    expect(ok({ region: 'US', state: 'California', city: 'Sunnyvale' }, santaClara)).toBe(true);
  });

  it('rejects a wrong state or region', () => {
    const check = (region: Record<string, string>, point: { lat: number; lon: number }) => {
      const d = evaluateGeoPolicy(permissive, { region, point });
      return d.allowed ? 'allowed' : d.check;
    };
    expect(check({ region: 'US', state: 'Texas', city: 'Austin' }, santaClara)).toBe('region_mismatch');
    expect(check({ region: 'US', state: 'Texas' }, santaClara)).toBe('region_mismatch');
    expect(check({ region: 'EU' }, santaClara)).toBe('region_mismatch');
    expect(check({ region: 'DE', state: 'Bayern' }, berlin)).toBe('region_mismatch');
    expect(check({ region: 'US', state: 'Texas' }, austin)).toBe('allowed');
  });

  it('names the table cannot resolve conclude nothing; a point it cannot place fails closed for states', () => {
    expect(evaluateGeoPolicy({}, { region: { region: 'Site-A' }, point: berlin }).allowed).toBe(true);
    // California is a boundary in the table: a point in the Atlantic contradicts it.
    expect(evaluateGeoPolicy({}, { region: sc, point: mid })).toMatchObject({ check: 'region_mismatch' });
    // permissive names regions only: a point at sea is simply not inside them.
    expect(evaluateGeoPolicy(permissive, { region: { region: 'Site-A' }, point: mid })).toMatchObject({
      check: 'region',
    });
    // allow names states: off the Californian coast the point is in US waters but in no state.
    const offshore = { lat: 36.0, lon: -123.5 };
    expect(labelPoint(offshore.lat, offshore.lon)).toEqual({ region: 'US' });
    expect(evaluateGeoPolicy(allow, { region: { region: 'XX' }, point: offshore })).toMatchObject({
      check: 'place_unknown',
    });
    // A state of a country the table has no subdivisions for cannot be decided with a point.
    const italy: GeoPolicy = { allow: [{ region: 'IT', state: 'Lombardia' }] };
    const milan = { lat: 45.464, lon: 9.19 };
    expect(
      evaluateGeoPolicy(italy, { region: { region: 'IT', state: 'Lombardia' }, point: milan }),
    ).toMatchObject({
      check: 'place_unknown',
    });
    // No point or no claim: nothing to compare.
    expect(evaluateGeoPolicy(permissive, { region: sc })).toMatchObject({
      allowed: true,
      matched_by: 'name',
    });
    expect(evaluateGeoPolicy({}, { point: berlin }).allowed).toBe(true);
  });

  it('takes a custom box table from the policy, or none (region_table: false)', () => {
    const custom: GeoPolicy = {
      allow: [{ region: 'DE' }, { region: 'US' }, { region: 'EU' }],
      region_table: [{ box: [13, 52, 14, 53], place: { region: 'DE', state: 'Berlin' } }],
    };
    expect(evaluateGeoPolicy(custom, { region: { region: 'DE', state: 'Berlin' }, point: berlin })).toEqual({
      allowed: true,
      matched: { region: 'DE' },
      matched_by: 'boundary',
      place: 'DE',
    });
    expect(evaluateGeoPolicy(custom, { region: sc, point: berlin })).toMatchObject({
      check: 'region_mismatch',
    });
    // The custom table replaces the place table for the consistency check: Santa Clara is unknown
    // to it, but the allow entries still need the point inside their boundary.
    expect(evaluateGeoPolicy(custom, { region: { region: 'EU' }, point: santaClara })).toMatchObject({
      allowed: true,
      place: 'US',
    });
    const off: GeoPolicy = { ...permissive, region_table: false };
    expect(evaluateGeoPolicy(off, { region: sc, point: berlin })).toMatchObject({
      allowed: true,
      place: 'EU',
    });
    expect(() =>
      geoPolicySchema.parse({ region_table: [{ box: [10, 0, 0, 0], place: { region: 'X' } }] }),
    ).toThrow();
    expect(() =>
      geoPolicySchema.parse({ region_table: [{ box: [0, 0, 1, 1], place: { region: 'X', city: 'Y' } }] }),
    ).toThrow();
  });

  it('property: the label the table gives a point is never a mismatch', () => {
    const point = fc.record({
      lat: fc.double({ min: 25, max: 55, noNaN: true }),
      lon: fc.double({ min: -124, max: 20, noNaN: true }),
    });
    fc.assert(
      fc.property(point, fc.boolean(), (pt, upper) => {
        const place = labelPoint(pt.lat, pt.lon);
        if (place === undefined) return;
        const region = upper
          ? Object.fromEntries(Object.entries(place).map(([k, v]) => [k, String(v).toUpperCase()]))
          : place;
        expect(evaluateGeoPolicy({}, { region, point: pt })).toEqual({ allowed: true });
      }),
      { numRuns: 300 },
    );
  });
});

describe('point in polygon (protocol) against @turf/boolean-point-in-polygon', () => {
  it('agrees on random points, for a polygon with a hole, boundary included or not', () => {
    const outer = [
      [0, 0],
      [10, 0],
      [10, 10],
      [5, 14],
      [0, 10],
      [0, 0],
    ];
    const hole = [
      [3, 3],
      [7, 3],
      [7, 7],
      [3, 7],
      [3, 3],
    ];
    const [poly] = compilePolygonList([[outer, hole]]);
    const geometry = { type: 'Polygon' as const, coordinates: [outer, hole] };
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: -2, max: 16 }), fc.double({ min: -2, max: 16, noNaN: true })),
        fc.oneof(fc.integer({ min: -2, max: 16 }), fc.double({ min: -2, max: 16, noNaN: true })),
        (x, y) => {
          expect(pointInside(poly!, x, y)).toBe(booleanPointInPolygon([x, y], geometry));
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('the verdict names the fence that matched', () => {
  const square = (x: number, y: number): [number, number][] => [
    [x, y],
    [x + 1, y],
    [x + 1, y + 1],
    [x, y + 1],
    [x, y],
  ];
  const policy: GeoPolicy = {
    fences: [
      { type: 'Polygon', coordinates: [square(0, 0)] },
      {
        type: 'Feature',
        id: 'depot-east',
        properties: null,
        geometry: { type: 'MultiPolygon', coordinates: [[square(10, 0)], [square(20, 0)]] },
      },
      {
        type: 'Feature',
        properties: { name: 'no id' },
        geometry: { type: 'Polygon', coordinates: [square(30, 0)] },
      },
    ],
  };

  it('by index, and by Feature id when the fence has one (any polygon of a MultiPolygon)', () => {
    const at = (lon: number) => evaluateGeoPolicy(policy, { point: { lat: 0.5, lon, accuracy: 10 } });
    expect(at(0.5)).toEqual({ allowed: true, fence: { index: 0 } });
    expect(at(10.5)).toEqual({ allowed: true, fence: { index: 1, id: 'depot-east' } });
    expect(at(20.5)).toEqual({ allowed: true, fence: { index: 1, id: 'depot-east' } });
    expect(at(30.5)).toEqual({ allowed: true, fence: { index: 2 } });
    expect(at(5.5)).toMatchObject({ allowed: false, check: 'fence', expected: { fences: 3 } });
  });
});
