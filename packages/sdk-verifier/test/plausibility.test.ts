/**
 * Movement plausibility math (accuracy-adjusted speed between two fixes) and the check that keeps
 * the last accepted position in a nonce store.
 */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AcceptedPosition,
  AttestationResultSigner,
  assessMovement,
  checkMovement,
  createAttestationHandlers,
  DEFAULT_MAX_SPEED_KMH,
  GeofenceError,
  greatCircleMetres,
  MemoryNonceStore,
  positionRetentionSeconds,
  resolveMaxSpeed,
  SqliteRegistry,
  validateCollectorOptions,
} from '../src/index.js';

const R = 6_371_008.8;
// Positions lapse by the store's (real) clock: fix times are around now.
const T0 = Math.floor(Date.now() / 1000) * 1000;
const KEYID = 'a'.repeat(64);

const position = fc.record({
  lat: fc.double({ min: -89, max: 89, noNaN: true }),
  lon: fc.double({ min: -180, max: 180, noNaN: true }),
  accuracy: fc.double({ min: 0, max: 50_000, noNaN: true }),
  at: fc.integer({ min: T0, max: T0 + 86_400_000 }),
});

describe('greatCircleMetres', () => {
  it('matches known distances', () => {
    // One degree of latitude on the mean sphere.
    expect(greatCircleMetres(0, 0, 1, 0)).toBeCloseTo((Math.PI / 180) * R, 3);
    // Antipodes: half the circumference.
    expect(greatCircleMetres(10, 20, -10, -160)).toBeCloseTo(Math.PI * R, 0);
    // Santa Clara – New York ≈ 4,100 km; Strasbourg – Kehl (across the Rhine) ≈ 3 km.
    const sjNy = greatCircleMetres(37.354, -121.955, 40.7128, -74.006) / 1000;
    expect(sjNy > 4080 && sjNy < 4130).toBe(true);
    expect(greatCircleMetres(48.5734, 7.7521, 48.5667, 7.8167) / 1000).toBeCloseTo(4.8, 0);
  });

  it('is symmetric, zero for one point, and never above half the circumference', () => {
    fc.assert(
      fc.property(position, position, (a, b) => {
        const d = greatCircleMetres(a.lat, a.lon, b.lat, b.lon);
        expect(d).toBeCloseTo(greatCircleMetres(b.lat, b.lon, a.lat, a.lon), 6);
        expect(d).toBeLessThanOrEqual(Math.PI * R + 1e-6);
        expect(greatCircleMetres(a.lat, a.lon, a.lat, a.lon)).toBe(0);
      }),
    );
  });
});

describe('assessMovement (accuracy-adjusted speed)', () => {
  it('speed is the distance minus both accuracy radii, over the time between the fixes', () => {
    fc.assert(
      fc.property(position, position, (a, b) => {
        const m = assessMovement(a, b, DEFAULT_MAX_SPEED_KMH);
        const d = greatCircleMetres(a.lat, a.lon, b.lat, b.lon);
        const sep = Math.max(0, d - a.accuracy - b.accuracy);
        const elapsed = Math.abs(b.at - a.at) / 1000;
        expect(m.separation_m).toBeCloseTo(sep, 6);
        expect(m.elapsed_seconds).toBe(elapsed);
        if (sep === 0) expect(m.speed_kmh).toBe(0);
        else if (elapsed === 0) expect(m.speed_kmh).toBeNull();
        else expect(m.speed_kmh).toBeCloseTo(sep / 1000 / (elapsed / 3600), 6);
        expect(m.plausible).toBe(m.speed_kmh !== null && m.speed_kmh <= DEFAULT_MAX_SPEED_KMH);
      }),
    );
  });

  it('does not depend on the order in which the fixes arrive', () => {
    fc.assert(
      fc.property(position, position, (a, b) => {
        expect(assessMovement(a, b, 1000)).toEqual(assessMovement(b, a, 1000));
      }),
    );
  });

  it('two accuracy circles that overlap are never a movement, however short the time', () => {
    fc.assert(
      fc.property(position, fc.double({ min: 0, max: 0.999, noNaN: true }), (a, share) => {
        // A second point inside the reach of both circles, at the same fix time.
        const d = (a.accuracy + 100) * share;
        const b = { lat: a.lat + (d / R) * (180 / Math.PI), lon: a.lon, accuracy: 100, at: a.at };
        const m = assessMovement(a, b, 1);
        expect(m.speed_kmh).toBe(0);
        expect(m.plausible).toBe(true);
      }),
    );
  });

  it('larger accuracy circles or more time never make a movement less plausible', () => {
    fc.assert(
      fc.property(
        position,
        position,
        fc.double({ min: 0, max: 10_000, noNaN: true }),
        fc.integer({ min: 0, max: 3_600_000 }),
        fc.double({ min: 1, max: 5000, noNaN: true }),
        (a, b, extra, later, max) => {
          const base = assessMovement(a, b, max);
          const wider = assessMovement(a, { ...b, accuracy: b.accuracy + extra }, max);
          const b2 = b.at >= a.at ? { ...b, at: b.at + later } : { ...b, at: b.at - later };
          const slower = assessMovement(a, b2, max);
          if (base.plausible) {
            expect(wider.plausible).toBe(true);
            expect(slower.plausible).toBe(true);
          }
        },
      ),
    );
  });

  it('refuses exactly the movements faster than the maximum (point moved along a meridian)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -60, max: 60, noNaN: true }),
        fc.double({ min: 0, max: 2000, noNaN: true }),
        fc.integer({ min: 1, max: 36_000 }),
        fc.double({ min: 10, max: 5000, noNaN: true }),
        fc.double({ min: 0.5, max: 2, noNaN: true }),
        (lat, acc, seconds, max, factor) => {
          fc.pre(Math.abs(factor - 1) > 0.01);
          // Travelled at factor × max beyond the two accuracy circles.
          const travelled = ((max * factor) / 3.6) * seconds + 2 * acc;
          const a = { lat, lon: 10, accuracy: acc, at: T0 };
          const b = {
            lat: lat + (travelled / R) * (180 / Math.PI),
            lon: 10,
            accuracy: acc,
            at: T0 + seconds * 1000,
          };
          fc.pre(b.lat < 89);
          expect(assessMovement(a, b, max).plausible).toBe(factor < 1);
        },
      ),
    );
  });

  it('the issue 16 case: 2,370 km in one second with 10 m accuracy is refused', () => {
    const a = { lat: 37.354, lon: -121.955, accuracy: 10, at: T0 };
    // 2370 km due north (along the meridian): the distance, not the direction, matters.
    const b = { lat: 37.354 + (2_370_000 / R) * (180 / Math.PI), lon: -121.955, accuracy: 10, at: T0 + 1000 };
    const m = assessMovement(a, b, DEFAULT_MAX_SPEED_KMH);
    expect(m.plausible).toBe(false);
    expect(m.speed_kmh).toBeCloseTo(2_370_000 / 1000 / (1 / 3600) - 0.02 * 3600, -2);
  });
});

describe('checkMovement with a nonce store', () => {
  const at = (p: Omit<AcceptedPosition, 'at'>, t: number): AcceptedPosition => ({ ...p, at: t });
  const SANTA_CLARA = { lat: 37.354, lon: -121.955, accuracy: 10 };
  const NEW_YORK = { lat: 40.7128, lon: -74.006, accuracy: 10 };

  it('records the first position, refuses a jump without recording it, keeps the newer fix', async () => {
    const store = new MemoryNonceStore();
    await checkMovement(store, KEYID, 'agent-1', at(SANTA_CLARA, T0), 1000);
    expect(await store.lastPosition(KEYID)).toEqual(at(SANTA_CLARA, T0));
    const err = await checkMovement(store, KEYID, 'agent-1', at(NEW_YORK, T0 + 60_000), 1000).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GeofenceError);
    expect(err).toMatchObject({
      validationType: 'geolocation_policy',
      status: 403,
      details: {
        agent_name: 'agent-1',
        check: 'implausible_movement',
        expected: { max_speed_kmh: 1000 },
        received: { elapsed_seconds: 60, previous: { lat: 37.354, fix_time: new Date(T0).toISOString() } },
      },
    });
    // The refused position is not the new reference.
    expect(await store.lastPosition(KEYID)).toEqual(at(SANTA_CLARA, T0));
    // Flying there in five hours is plausible and becomes the reference …
    await checkMovement(store, KEYID, 'agent-1', at(NEW_YORK, T0 + 5 * 3_600_000), 1000);
    expect(await store.lastPosition(KEYID)).toEqual(at(NEW_YORK, T0 + 5 * 3_600_000));
    // … and a late, older fix near the old place is checked against it but does not replace it.
    await checkMovement(store, KEYID, 'agent-1', at(SANTA_CLARA, T0 + 60_000), 1000);
    expect(await store.lastPosition(KEYID)).toEqual(at(NEW_YORK, T0 + 5 * 3_600_000));
    await store.close();
  });

  it('keeps positions as long as some later fix could still be refused against them', () => {
    fc.assert(
      fc.property(fc.double({ min: 1, max: 100_000, noNaN: true }), (max) => {
        const s = positionRetentionSeconds(max);
        // After the retention, even antipodes are reachable at max.
        expect(((Math.PI * R) / 1000 / max) * 3600).toBeLessThanOrEqual(s);
      }),
    );
    // Half the circumference (20,015 km) at 1000 km/h: a little over 20 hours.
    expect(positionRetentionSeconds(1000)).toBe(72_055);
  });

  it('validates the maximum speed option', () => {
    expect(resolveMaxSpeed(undefined)).toBe(1000);
    expect(resolveMaxSpeed(false)).toBeUndefined();
    expect(resolveMaxSpeed(250)).toBe(250);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => resolveMaxSpeed(bad)).toThrow(TypeError);
  });

  it('refuses a bad limit when the collector or the attestation handlers are configured', async () => {
    const registry = await SqliteRegistry.open({ path: ':memory:' });
    const nonces = new MemoryNonceStore();
    expect(() => validateCollectorOptions({ registry, nonces, maxSpeedKmh: -5 })).toThrow(
      /collector: option maxSpeedKmh/,
    );
    expect(() => validateCollectorOptions({ registry, nonces, maxSpeedKmh: false })).not.toThrow();
    const signer = await AttestationResultSigner.create({
      key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      issuer: 'https://collector.test',
    });
    expect(() =>
      createAttestationHandlers({
        signer,
        location: { registry, nonces, signer, policy: {}, maxSpeedKmh: 0 },
      }),
    ).toThrow(TypeError);
    await registry.close();
  });
});
