import { describe, expect, it } from 'vitest';
import {
  evaluateGeoPolicy,
  findRegion,
  findState,
  type GeoPolicy,
  labelPoint,
  placeContainsPoint,
  placeOutline,
} from '../src/index.js';

// Issue 16, Done when: points on both sides of real borders, decided by the place table's
// boundaries with the whole accuracy circle (10 m: decided; 20 km: too close to the border).
type Pt = { lat: number; lon: number };
const STRASBOURG: Pt = { lat: 48.5734, lon: 7.7521 };
const KEHL: Pt = { lat: 48.5723, lon: 7.8156 };
const RENO: Pt = { lat: 39.5296, lon: -119.8138 };
const TRUCKEE: Pt = { lat: 39.328, lon: -120.1833 };
const EL_PASO: Pt = { lat: 31.7619, lon: -106.485 };
const CIUDAD_JUAREZ: Pt = { lat: 31.6904, lon: -106.4245 };
const BASEL: Pt = { lat: 47.5596, lon: 7.5886 };
const LOERRACH: Pt = { lat: 47.6156, lon: 7.6614 };

const decide = (policy: GeoPolicy, p: Pt, accuracy: number, region = labelPoint(p.lat, p.lon)) => {
  const d = evaluateGeoPolicy(policy, { region, point: { ...p, accuracy } });
  return d.allowed ? 'allowed' : d.check;
};

const pairs: Array<{
  name: string;
  policy: GeoPolicy;
  inside: Pt;
  outside: Pt;
}> = [
  // The allow entry in each of the spellings the table accepts.
  {
    name: 'Kehl vs Strasbourg (EU/Germany)',
    policy: { allow: [{ region: 'EU', state: 'Germany' }] },
    inside: KEHL,
    outside: STRASBOURG,
  },
  {
    name: 'Strasbourg vs Kehl (FR)',
    policy: { allow: [{ region: 'FR' }] },
    inside: STRASBOURG,
    outside: KEHL,
  },
  {
    name: 'Strasbourg vs Kehl (FR/Grand Est)',
    policy: { allow: [{ region: 'France', state: 'Grand Est' }] },
    inside: STRASBOURG,
    outside: KEHL,
  },
  {
    name: 'Truckee vs Reno (US/California)',
    policy: { allow: [{ region: 'US', state: 'California' }] },
    inside: TRUCKEE,
    outside: RENO,
  },
  {
    name: 'Reno vs Truckee (US-NV)',
    policy: { allow: [{ region: 'US', state: 'US-NV' }] },
    inside: RENO,
    outside: TRUCKEE,
  },
  {
    name: 'El Paso vs Ciudad Juárez (US/TX)',
    policy: { allow: [{ region: 'US', state: 'TX' }] },
    inside: EL_PASO,
    outside: CIUDAD_JUAREZ,
  },
  {
    name: 'Ciudad Juárez vs El Paso (Mexico)',
    policy: { allow: [{ region: 'Mexico' }] },
    inside: CIUDAD_JUAREZ,
    outside: EL_PASO,
  },
  {
    name: 'Ciudad Juárez vs El Paso (MX/Chihuahua)',
    policy: { allow: [{ region: 'MX', state: 'Chihuahua' }] },
    inside: CIUDAD_JUAREZ,
    outside: EL_PASO,
  },
  { name: 'Basel vs Lörrach (CH)', policy: { allow: [{ region: 'CH' }] }, inside: BASEL, outside: LOERRACH },
  {
    name: 'Basel vs Lörrach (Switzerland/Basel-Stadt)',
    policy: { allow: [{ region: 'Switzerland', state: 'Basel-Stadt' }] },
    inside: BASEL,
    outside: LOERRACH,
  },
  { name: 'Lörrach vs Basel (DE)', policy: { allow: [{ region: 'DE' }] }, inside: LOERRACH, outside: BASEL },
  {
    name: 'Lörrach vs Basel (Germany/Baden-Württemberg)',
    policy: { allow: [{ region: 'Germany', state: 'Baden-Württemberg' }] },
    inside: LOERRACH,
    outside: BASEL,
  },
];

describe('real borders (issue 16)', () => {
  it('labels each side by ISO 3166-1 code and subdivision name', () => {
    expect(labelPoint(STRASBOURG.lat, STRASBOURG.lon)).toEqual({ region: 'FR', state: 'Grand Est' });
    expect(labelPoint(KEHL.lat, KEHL.lon)).toEqual({ region: 'DE', state: 'Baden-Württemberg' });
    expect(labelPoint(RENO.lat, RENO.lon)).toEqual({ region: 'US', state: 'Nevada' });
    expect(labelPoint(TRUCKEE.lat, TRUCKEE.lon)).toEqual({ region: 'US', state: 'California' });
    expect(labelPoint(EL_PASO.lat, EL_PASO.lon)).toEqual({ region: 'US', state: 'Texas' });
    expect(labelPoint(CIUDAD_JUAREZ.lat, CIUDAD_JUAREZ.lon)).toEqual({ region: 'MX', state: 'Chihuahua' });
    expect(labelPoint(BASEL.lat, BASEL.lon)).toEqual({ region: 'CH', state: 'Basel-Stadt' });
    expect(labelPoint(LOERRACH.lat, LOERRACH.lon)).toEqual({ region: 'DE', state: 'Baden-Württemberg' });
  });

  for (const { name, policy, inside, outside } of pairs) {
    it(`${name}: decided at 10 m, refused at 20 km`, () => {
      expect(decide(policy, inside, 10)).toBe('allowed');
      // The other side, with its own honest label: not in the allowed place.
      expect(decide(policy, outside, 10)).toBe('region');
      // The other side claiming the allowed place: the claim contradicts the point.
      const claim = policy.allow![0]!;
      expect(decide(policy, outside, 10, claim)).toBe('region_mismatch');
      // 20 km circles reach across the border: not wholly inside, refused.
      expect(decide(policy, inside, 20_000)).toBe('region');
      expect(decide(policy, outside, 20_000)).toBe('region');
    });
  }

  it('the verdict names the boundary that matched', () => {
    expect(
      evaluateGeoPolicy(
        { allow: [{ region: 'EU', state: 'Germany' }] },
        { region: { region: 'DE', state: 'Baden-Württemberg' }, point: { ...KEHL, accuracy: 10 } },
      ),
    ).toEqual({
      allowed: true,
      matched: { region: 'EU', state: 'Germany' },
      matched_by: 'boundary',
      place: 'DE',
    });
  });

  it('a city has no polygon: matched by name only inside its state, and the verdict says so', () => {
    const policy: GeoPolicy = { allow: [{ region: 'US', state: 'Nevada', city: 'Reno' }] };
    const at = { ...RENO, accuracy: 10 };
    expect(
      evaluateGeoPolicy(policy, { region: { region: 'US', state: 'Nevada', city: 'Reno' }, point: at }),
    ).toEqual({
      allowed: true,
      matched: { region: 'US', state: 'Nevada', city: 'Reno' },
      matched_by: 'boundary',
      place: 'US-NV',
      city_matched_by: 'name',
    });
    expect(evaluateGeoPolicy(policy, { region: { region: 'US', state: 'Nevada' }, point: at })).toMatchObject(
      {
        check: 'region',
      },
    );
  });

  it('Utah coordinates claiming Santa Clara: region_mismatch', () => {
    const salt = { lat: 40.7608, lon: -111.891, accuracy: 10 };
    const santaClara = { region: 'US', state: 'California', city: 'Santa Clara' };
    for (const policy of [{ allow: [santaClara] }, { allow: [{ region: 'US' }] }, {}] as GeoPolicy[]) {
      expect(evaluateGeoPolicy(policy, { region: santaClara, point: salt })).toMatchObject({
        allowed: false,
        check: 'region_mismatch',
        expected: { places_at_point: [{ region: 'US', state: 'Utah' }] },
      });
    }
  });

  it('a point the table cannot place at the required level fails closed', () => {
    // In US waters off California: a country, but no state.
    const offshore = { lat: 36.0, lon: -123.5, accuracy: 10 };
    expect(
      evaluateGeoPolicy({ allow: [{ region: 'US', state: 'California' }] }, { point: offshore }),
    ).toMatchObject({
      check: 'place_unknown',
    });
    // A state in a country the table has no subdivisions for.
    const rome = { lat: 41.9, lon: 12.5, accuracy: 10 };
    expect(evaluateGeoPolicy({ allow: [{ region: 'IT', state: 'Lazio' }] }, { point: rome })).toMatchObject({
      check: 'place_unknown',
    });
    // The country alone is decided.
    expect(evaluateGeoPolicy({ allow: [{ region: 'Italy' }] }, { point: rome })).toMatchObject({
      allowed: true,
      place: 'IT',
    });
  });
});

describe('accuracy in region policies (issue 16 item 2)', () => {
  const santaClara = { lat: 37.354, lon: -121.955 };
  const claim = { region: 'US', state: 'California', city: 'Santa Clara' };
  const policy: GeoPolicy = { allow: [claim] };

  it('a 10,000 km accuracy circle is not inside Santa Clara', () => {
    expect(
      evaluateGeoPolicy(policy, { region: claim, point: { ...santaClara, accuracy: 25 } }),
    ).toMatchObject({
      allowed: true,
    });
    expect(
      evaluateGeoPolicy(policy, { region: claim, point: { ...santaClara, accuracy: 10_000_000 } }),
    ).toMatchObject({ allowed: false, check: 'region' });
  });

  it('max_accuracy_m refuses larger and missing accuracy radii', () => {
    const strict: GeoPolicy = { allow: [{ region: 'US' }], max_accuracy_m: 50 };
    const d = (accuracy?: number) =>
      evaluateGeoPolicy(strict, { point: accuracy === undefined ? santaClara : { ...santaClara, accuracy } });
    expect(d(50)).toMatchObject({ allowed: true });
    expect(d(51)).toMatchObject({
      allowed: false,
      check: 'accuracy',
      expected: { max_accuracy_m: 50 },
      received: { accuracy: 51 },
    });
    expect(d()).toMatchObject({ allowed: false, check: 'accuracy', received: { accuracy: null } });
    expect(evaluateGeoPolicy(strict, { region: { region: 'US' } })).toMatchObject({ check: 'accuracy' });
    expect(() => evaluateGeoPolicy({ max_accuracy_m: 0 }, {})).toThrow();
  });
});

/** Even-odd ray casting over GeoJSON MultiPolygon coordinates (independent of the table's own code). */
function inMultiPolygon(mp: number[][][][], { lat, lon }: Pt): boolean {
  let inside = false;
  for (const poly of mp)
    for (const ring of poly)
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const [xi, yi] = ring[i] as [number, number];
        const [xj, yj] = ring[j] as [number, number];
        if (yi > lat !== yj > lat && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
      }
  return inside;
}

describe('placeOutline (the console map draws it)', () => {
  it('is the outline the containment checks use, for subdivisions, countries and unions', () => {
    const us = findRegion('US');
    const california = us && findState(us, 'California');
    const eu = findRegion('EU');
    expect(california && eu).toBeTruthy();
    if (!california || !us || !eu) return;
    for (const place of [california, us, eu]) {
      const outline = placeOutline(place);
      expect(outline.length).toBeGreaterThan(0);
      for (const p of [TRUCKEE, RENO, EL_PASO, CIUDAD_JUAREZ, STRASBOURG, KEHL, BASEL, LOERRACH])
        expect(inMultiPolygon(outline, p), `${place.code} ${p.lat},${p.lon}`).toBe(
          placeContainsPoint(place, p.lat, p.lon),
        );
    }
    expect(inMultiPolygon(placeOutline(california), TRUCKEE)).toBe(true);
    expect(inMultiPolygon(placeOutline(california), RENO)).toBe(false);
  });
});
