import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelPoint, lookupRegion } from '../src/location/geocode.js';
import { gpsdLocation, sensorIdHash } from '../src/location/gpsd.js';
import { LineSplitter, parseGpsdLine, tpvAccuracy, tpvQuality } from '../src/location/gpsd-protocol.js';
import { NoLocationError } from '../src/location/types.js';
import { DOUBTFUL_TRACKS, freePort, type Gpsfake, startGpsfake, YEAR } from './helpers/gpsfake.js';

let gps: Gpsfake;
let doubtful: Gpsfake;
// gpsfake replays at roughly one epoch per second; on a loaded machine it lags behind the wall
// clock, so tests that are not about staleness allow a generous fix age.
const AGE = 300;

beforeAll(async () => {
  gps = await startGpsfake([
    { name: 'santa-clara', file: 'santa-clara.nmea', lat: 37.354 },
    { name: 'berlin', file: 'berlin.nmea', lat: 52.52 },
    { name: 'no-fix', file: 'no-fix.nmea' },
  ]);
  // gpsd serves at most four devices: the tracks with doubtful fixes get their own daemon.
  doubtful = await startGpsfake(DOUBTFUL_TRACKS);
});

afterAll(async () => {
  await gps?.stop();
  await doubtful?.stop();
});

describe('gpsdLocation against gpsd + gpsfake', () => {
  it('reports the Santa Clara track as US/California with GNSS quality', async () => {
    const p = gpsdLocation({ port: gps.port, device: gps.devices['santa-clara'], maxFixAgeSeconds: AGE });
    try {
      const obs = await p.current();
      expect(obs.geographicRegion).toEqual({ region: 'US', state: 'California' });
      expect(obs.quality).toBe('GNSS');
      const r = obs.reading!;
      expect(r.quality).toBe('GNSS');
      expect(r.lat).toBeCloseTo(37.354, 2);
      expect(r.lon).toBeCloseTo(-121.955, 2);
      // epx/epy from the fixture's sky view and GST sentences; √(epx²+epy²).
      expect(r.accuracy).toBeGreaterThan(0);
      expect(r.accuracy).toBeLessThan(50);
      expect(Math.abs(Date.parse(r.fix_time!) - Date.now())).toBeLessThan(AGE * 1000);
      expect(obs.sensor).toMatchObject({
        type: 'gnss',
        path: gps.devices['santa-clara'],
        driver: 'NMEA0183',
      });
      expect(r.sensor_id_hash).toBe(sensorIdHash(obs.sensor!));
      expect(r.sensor_id_hash).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await p.close!();
    }
  });

  it('reports the Berlin track as DE/Berlin, with a different sensor id', async () => {
    const sc = gpsdLocation({ port: gps.port, device: gps.devices['santa-clara'], maxFixAgeSeconds: AGE });
    const be = gpsdLocation({ port: gps.port, device: gps.devices.berlin, maxFixAgeSeconds: AGE });
    try {
      const obs = await be.current();
      expect(obs.geographicRegion).toEqual({ region: 'DE', state: 'Berlin' });
      expect(obs.reading!.lat).toBeCloseTo(52.52, 2);
      expect(obs.reading!.lon).toBeCloseTo(13.405, 2);
      expect(obs.reading!.sensor_id_hash).not.toBe((await sc.current()).reading!.sensor_id_hash);
    } finally {
      await sc.close!();
      await be.close!();
    }
  });

  it('uses a configured mapping before the shipped table', async () => {
    const p = gpsdLocation({
      port: gps.port,
      device: gps.devices.berlin,
      maxFixAgeSeconds: AGE,
      regionMapping: [
        { box: [13.3, 52.4, 13.5, 52.6], place: { region: 'EU', state: 'Germany', city: 'Berlin-Mitte' } },
      ],
    });
    try {
      expect((await p.current()).geographicRegion.city).toBe('Berlin-Mitte');
    } finally {
      await p.close!();
    }
  });

  it('refuses to name a place for coordinates outside every mapping', async () => {
    const p = gpsdLocation({
      port: gps.port,
      device: gps.devices.berlin,
      maxFixAgeSeconds: AGE,
      useBuiltinTable: false,
      regionMapping: [{ box: [0, 0, 1, 1], place: { region: 'X' } }],
    });
    try {
      await expect(p.current()).rejects.toMatchObject({ name: 'NoLocationError', code: 'unmapped' });
    } finally {
      await p.close!();
    }
  });

  it('has no location while the receiver has no fix (mode < 2)', async () => {
    const p = gpsdLocation({ port: gps.port, device: gps.devices['no-fix'], fixTimeoutMs: 3000 });
    try {
      const err = await p.current().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NoLocationError);
      expect((err as NoLocationError).code).toBe('no_fix');
    } finally {
      await p.close!();
    }
  });

  it('treats a fix older than maxFixAgeSeconds as stale', async () => {
    const p = gpsdLocation({
      port: gps.port,
      device: gps.devices['santa-clara'],
      maxFixAgeSeconds: 5,
      now: () => Date.now() + 3_600_000,
    });
    try {
      await expect(p.current()).rejects.toMatchObject({ code: 'stale_fix' });
    } finally {
      await p.close!();
    }
  });

  it('reports a dead-reckoning fix (TPV status 5) as dead-reckoning, not GNSS', async () => {
    const p = gpsdLocation({
      port: doubtful.port,
      device: doubtful.devices['dead-reckoning'],
      maxFixAgeSeconds: AGE,
    });
    try {
      const obs = await p.current();
      expect(obs.quality).toBe('dead-reckoning');
      expect(obs.reading).toMatchObject({ quality: 'dead-reckoning' });
      expect(obs.reading!.lat).toBeCloseTo(35.4, 2);
      expect(obs.geographicRegion).toEqual({ region: 'US', state: 'California' });
    } finally {
      await p.close!();
    }
  });

  it('reports a simulator fix (TPV status 8) as simulated, not GNSS', async () => {
    const p = gpsdLocation({
      port: doubtful.port,
      device: doubtful.devices.simulated,
      maxFixAgeSeconds: AGE,
    });
    try {
      const obs = await p.current();
      expect(obs.quality).toBe('simulated');
      expect(obs.reading).toMatchObject({ quality: 'simulated' });
      expect(obs.reading!.lat).toBeCloseTo(33.9, 2);
    } finally {
      await p.close!();
    }
  });

  it('reports the worse of eph and the epx/epy circle (eph 1898 m, epx/epy ≈ 10 m)', async () => {
    const p = gpsdLocation({
      port: doubtful.port,
      device: doubtful.devices['large-eph'],
      maxFixAgeSeconds: AGE,
    });
    try {
      const obs = await p.current();
      expect(obs.quality).toBe('GNSS');
      // gpsd: eph = HDOP 99.9 × UERE = 1898.1 m; epx/epy from the sky view ≈ 8.6/10.5 m (13.6 m).
      expect(obs.reading!.accuracy).toBeGreaterThanOrEqual(1898);
      expect(obs.reading!.accuracy).toBeLessThan(1900);
    } finally {
      await p.close!();
    }
  });

  it('refuses a fix dated beyond the clock skew in the future', async () => {
    const p = gpsdLocation({ port: doubtful.port, device: doubtful.devices.future, maxFixAgeSeconds: AGE });
    try {
      await expect(p.current()).rejects.toMatchObject({ name: 'NoLocationError', code: 'future_fix' });
    } finally {
      await p.close!();
    }
    // Within the skew (the agent's clock a year ahead too) the same fix is fine.
    const ahead = gpsdLocation({
      port: doubtful.port,
      device: doubtful.devices.future,
      maxFixAgeSeconds: AGE,
      now: () => Date.now() + YEAR * 1000,
    });
    try {
      expect((await ahead.current()).quality).toBe('GNSS');
    } finally {
      await ahead.close!();
    }
  });

  it('reports an unreachable daemon as a typed error', async () => {
    const p = gpsdLocation({ port: await freePort(), connectTimeoutMs: 1000 });
    await expect(p.current()).rejects.toMatchObject({ code: 'unreachable' });
  });
});

describe('gpsd protocol parsing', () => {
  it('parses TPV and DEVICE reports and keeps only typed members', () => {
    const tpv = parseGpsdLine(
      '{"class":"TPV","device":"/dev/pts/1","mode":3,"time":"2026-11-28T21:00:05.000Z","lat":37.35,"lon":-121.95,"epx":3,"epy":4,"eph":"x"}',
    );
    expect(tpv).toEqual({
      class: 'TPV',
      device: '/dev/pts/1',
      mode: 3,
      time: '2026-11-28T21:00:05.000Z',
      lat: 37.35,
      lon: -121.95,
      epx: 3,
      epy: 4,
    });
    expect(tpvAccuracy(tpv as never)).toBe(5);
    expect(parseGpsdLine('{"class":"TPV","mode":9}')).toBeUndefined();
    expect(parseGpsdLine('{"class":"TPV","mode":3,"lat":200,"lon":"1"}')).toEqual({ class: 'TPV', mode: 3 });
    expect(parseGpsdLine('{"class":"DEVICE","path":"/dev/ttyACM0","driver":"u-blox","subtype":1}')).toEqual({
      class: 'DEVICE',
      path: '/dev/ttyACM0',
      driver: 'u-blox',
    });
    expect(parseGpsdLine('{"class":"SKY"}')).toBeUndefined();
  });

  it('maps the TPV status to a quality; unknown statuses are not GNSS', () => {
    const tpv = (status?: unknown) =>
      parseGpsdLine(JSON.stringify({ class: 'TPV', mode: 3, lat: 1, lon: 1, status })) as never;
    expect([undefined, 0, 1, 2, 3, 4, 9].map((st) => tpvQuality(tpv(st)))).toEqual(Array(7).fill('GNSS'));
    expect(tpvQuality(tpv(5))).toBe('dead-reckoning');
    expect(tpvQuality(tpv(6))).toBe('dead-reckoning');
    expect(tpvQuality(tpv(7))).toBe('static');
    expect(tpvQuality(tpv(8))).toBe('simulated');
    expect(tpvQuality(tpv(10))).toBeUndefined();
    expect(tpvQuality(tpv('5'))).toBeUndefined();
    expect(tpvQuality(tpv(-1))).toBeUndefined();
  });

  it('takes the worst error estimate, rounded up, and invents none', () => {
    const acc = (e: Record<string, number>) => tpvAccuracy({ class: 'TPV', mode: 3, ...e });
    expect(acc({ eph: 1898.1, epx: 8.63, epy: 10.521 })).toBe(1898.1);
    expect(acc({ eph: 2, epx: 3, epy: 4 })).toBe(5);
    expect(acc({ epx: 8.63, epy: 10.521 })).toBe(13.61); // 13.6076… rounded up, never down
    expect(acc({ eph: 17.1 })).toBe(17.1);
    expect(acc({ eph: 3, epx: 9 })).toBe(9);
    expect(acc({ epx: 9 })).toBeUndefined();
    expect(acc({})).toBeUndefined();
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        (eph, epx, epy) => {
          const a = acc({ eph, epx, epy })!;
          expect(a).toBeGreaterThanOrEqual(eph);
          expect(a).toBeGreaterThanOrEqual(Math.hypot(epx, epy));
        },
      ),
    );
  });

  it('never throws and never yields out-of-range values on arbitrary input (fuzz)', () => {
    const member = fc.oneof(fc.double(), fc.integer(), fc.string(), fc.constant(null), fc.boolean());
    const report = fc.record({
      class: fc.constantFrom('TPV', 'DEVICE', 'DEVICES', 'SKY', 1),
      mode: member,
      lat: member,
      lon: member,
      time: fc.oneof(
        member,
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      ),
      epx: member,
      path: member,
      devices: fc.oneof(member, fc.array(fc.record({ path: member, driver: member }))),
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          report.map((r) => JSON.stringify(r)),
        ),
        (line) => {
          const r = parseGpsdLine(line);
          if (r?.class === 'TPV') {
            expect(r.mode).toBeGreaterThanOrEqual(0);
            expect(r.mode).toBeLessThanOrEqual(3);
            if (r.lat !== undefined) expect(Math.abs(r.lat)).toBeLessThanOrEqual(90);
            if (r.lon !== undefined) expect(Math.abs(r.lon)).toBeLessThanOrEqual(180);
            if (r.epx !== undefined) expect(r.epx).toBeGreaterThanOrEqual(0);
            if (r.time !== undefined) expect(Number.isFinite(Date.parse(r.time))).toBe(true);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('splits lines across chunks and bounds an unterminated line', () => {
    const s = new LineSplitter();
    expect(s.push('{"a":1}\r\n{"b"')).toEqual(['{"a":1}']);
    expect(s.push(':2}\n')).toEqual(['{"b":2}']);
    expect(s.push('x'.repeat(70_000))).toEqual([]);
    expect(s.push('\n{"c":3}\n')).toEqual(['', '{"c":3}']);
  });
});

describe('reverse geocoding table', () => {
  it('maps points to ISO 3166 country and first-level subdivision, nothing in the open ocean', () => {
    expect(labelPoint(37.354, -121.955)).toEqual({ region: 'US', state: 'California' });
    expect(labelPoint(52.52, 13.405)).toEqual({ region: 'DE', state: 'Berlin' });
    expect(labelPoint(48.5734, 7.7521)).toEqual({ region: 'FR', state: 'Grand Est' });
    expect(labelPoint(-40, -120)).toBeUndefined(); // South Pacific
  });

  it('searches operator boxes in order', () => {
    const boxes = [
      { box: [13, 52, 14, 53] as const, place: { region: 'DE', state: 'Berlin', city: 'Berlin' } },
    ];
    expect(lookupRegion(52.52, 13.405, boxes)).toEqual({ region: 'DE', state: 'Berlin', city: 'Berlin' });
    expect(lookupRegion(37.354, -121.955, boxes)).toBeUndefined();
  });
});
