import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SwtpmInstance, startSwtpm, Tpm } from '@geofence/native-tpm';
import { metricsPayloadSchema } from '@geofence/verifier';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../src/agent.js';
import { GeofenceRejection } from '../src/errors.js';
import { gpsdLocation } from '../src/location/gpsd.js';
import { NoLocationError } from '../src/location/types.js';
import { startCollector, startGateway, type TestCollector, type TestGateway } from './helpers/collector.js';
import { DOUBTFUL_TRACKS, type Gpsfake, startGpsfake } from './helpers/gpsfake.js';
import { makePki, type TestPki } from './helpers/pki.js';

/**
 * The agent with a real GNSS source (gpsd + gpsfake) through a gateway in policy-enforcement mode
 * (verifier gateway middleware) in front of the collector (verifier collector middleware).
 */
let swtpm: SwtpmInstance;
let tpm: Tpm;
let pki: TestPki;
let collector: TestCollector;
let gateway: TestGateway;
let gps: Gpsfake;
let doubtful: Gpsfake;
let jumping: Gpsfake;
const agents: Agent[] = [];

const SANTA_CLARA = { region: 'US', state: 'California', city: 'Santa Clara' };
// A fence around Santa Clara (lon/lat ring, closed).
const FENCE = {
  type: 'Polygon' as const,
  coordinates: [
    [
      [-122.03, 37.32],
      [-121.92, 37.32],
      [-121.92, 37.42],
      [-122.03, 37.42],
      [-122.03, 37.32],
    ] as [number, number][],
  ],
};
const POLICY = {
  allow: [SANTA_CLARA],
  fences: [FENCE],
  min_quality: 'GNSS' as const,
  max_fix_age_seconds: 600,
};

/** A TPM-backed agent reading one gpsd device, registered with `policy` unless `policy` is null. */
async function agentOn(
  name: string,
  o: {
    port: number;
    device: string;
    via: string;
    policy: object | null;
    regionMapping?: NonNullable<Parameters<typeof gpsdLocation>[0]>['regionMapping'];
  },
): Promise<Agent> {
  const agent = createAgent({
    name,
    tpm,
    gateway: o.via,
    tls: { ca: pki.caPem },
    location: gpsdLocation({
      port: o.port,
      device: o.device,
      maxFixAgeSeconds: 300,
      fixTimeoutMs: 3000,
      ...(o.regionMapping ? { regionMapping: o.regionMapping } : {}),
    }),
    stateDir: mkdtempSync(join(tmpdir(), `${name}-`)),
    outbox: false,
    retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  agents.push(agent);
  const id = await agent.ready();
  if (o.policy) await collector.register(name, id.publicKeyPem, id.keyid, o.policy);
  return agent;
}

function gnssAgent(name: string, device: string, register = true): Promise<Agent> {
  return agentOn(name, {
    port: gps.port,
    device,
    via: gateway.url,
    policy: register ? POLICY : null,
    // The place table has no cities: the operator names its site with a box.
    regionMapping: [{ box: [-122.03, 37.32, -121.92, 37.42], place: SANTA_CLARA }],
  });
}

/** A policy without `min_quality`: the verifier's default minimum applies. */
const CALIFORNIA = { allow: [{ region: 'US', state: 'California' }], max_fix_age_seconds: 600 };

/** An agent on one of the doubtful tracks, sending to the gateway or straight to the collector. */
function doubtfulAgent(name: string, track: string, via: 'gateway' | 'collector'): Promise<Agent> {
  return agentOn(name, {
    port: doubtful.port,
    device: doubtful.devices[track]!,
    via: via === 'gateway' ? gateway.url : collector.url,
    policy: CALIFORNIA,
  });
}

beforeAll(async () => {
  pki = makePki();
  swtpm = await startSwtpm({ ekCert: false, timeoutMs: 60_000 });
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  collector = await startCollector(pki);
  gateway = await startGateway(pki, collector);
  gps = await startGpsfake([
    { name: 'santa-clara', file: 'santa-clara.nmea', lat: 37.354 },
    { name: 'berlin', file: 'berlin.nmea', lat: 52.52 },
    { name: 'no-fix', file: 'no-fix.nmea' },
  ]);
  // Alone on its gpsfake, so that its epochs come about once a second (gpsfake feeds the devices
  // of one instance in turn): 35°N 120°W ↔ 35°N 94°W (≈ 2,370 km) between consecutive epochs.
  jumping = await startGpsfake([{ name: 'jumping', file: 'jumping.nmea', lat: 35.0 }]);
  doubtful = await startGpsfake(DOUBTFUL_TRACKS);
});

afterAll(async () => {
  for (const a of agents) await a.close();
  await gps?.stop();
  await doubtful?.stop();
  await jumping?.stop();
  await gateway?.stop();
  await collector?.stop();
  await tpm?.close();
  await swtpm?.stop();
});

describe('GNSS agent through a policy-enforcing gateway', () => {
  it('delivers a GNSS fix inside the fence; the stored payload carries the reading', async () => {
    const agent = await gnssAgent('agent-001', gps.devices['santa-clara']!);
    const { recordId } = await agent.send({ cpu: 0.3 });
    const payload = metricsPayloadSchema.parse(
      JSON.parse(collector.records.find((r) => r.recordId === recordId)!.raw),
    );
    expect(payload.geographic_region).toEqual(SANTA_CLARA);
    expect(payload.location).toMatchObject({ quality: 'GNSS' });
    expect(payload.location!.lat).toBeCloseTo(37.354, 2);
    expect(payload.location!.accuracy).toBeGreaterThan(0);
    expect(payload.location!.sensor_id_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(gateway.hits['/metrics']).toBeGreaterThan(0);
  });

  it('is stopped at the gateway when the receiver is in Berlin', async () => {
    const agent = await gnssAgent('agent-geo-policy-violation-002', gps.devices.berlin!);
    const before = collector.hits['/metrics'] ?? 0;
    const err = (await agent.send({ cpu: 0.3 }).catch((e: unknown) => e)) as GeofenceRejection;
    expect(err).toBeInstanceOf(GeofenceRejection);
    expect({ status: err.status, vt: err.validationType, by: err.rejectedBy }).toEqual({
      status: 403,
      vt: 'geolocation_policy',
      by: 'gateway',
    });
    expect(collector.hits['/metrics'] ?? 0).toBe(before); // never reached the collector
  });

  it('refuses an unregistered agent at the gateway /nonce', async () => {
    const agent = await gnssAgent('agent-unregistered-003', gps.devices['santa-clara']!, false);
    const err = (await agent.send({ cpu: 0.3 }).catch((e: unknown) => e)) as GeofenceRejection;
    expect(err).toMatchObject({ status: 403, validationType: 'agent_verification', rejectedBy: 'gateway' });
  });

  it('sends nothing at all while the receiver has no fix', async () => {
    const agent = await gnssAgent('agent-nofix', gps.devices['no-fix']!);
    const before = { ...gateway.hits };
    const err = await agent.send({ cpu: 0.3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoLocationError);
    expect(gateway.hits).toEqual(before);
  });
});

describe('doubtful GNSS fixes (gpsd TPV status, error estimates, receiver clock)', () => {
  const rejection = async (agent: Agent) =>
    (await agent.send({ cpu: 0.3 }).catch((e: unknown) => e)) as GeofenceRejection;

  it('signs a dead-reckoning fix as dead-reckoning; the gateway refuses it by default', async () => {
    const agent = await doubtfulAgent('agent-dr', 'dead-reckoning', 'gateway');
    const before = collector.hits['/metrics'] ?? 0;
    const err = await rejection(agent);
    expect(err).toBeInstanceOf(GeofenceRejection);
    expect({ status: err.status, vt: err.validationType, by: err.rejectedBy }).toEqual({
      status: 403,
      vt: 'geolocation_policy',
      by: 'gateway',
    });
    // The verdict quotes the signed payload's quality.
    expect(err.details).toMatchObject({ check: 'quality', received: { quality: 'dead-reckoning' } });
    expect(collector.hits['/metrics'] ?? 0).toBe(before);
  });

  it('signs a simulator fix as simulated; the collector refuses it by default', async () => {
    const agent = await doubtfulAgent('agent-sim', 'simulated', 'collector');
    const stored = collector.records.length;
    const err = await rejection(agent);
    expect({ status: err.status, vt: err.validationType, by: err.rejectedBy }).toEqual({
      status: 403,
      vt: 'geolocation_policy',
      by: 'collector',
    });
    expect(err.details).toMatchObject({ check: 'quality', received: { quality: 'simulated' } });
    expect(collector.records.length).toBe(stored);
  });

  it("signs the receiver's worst error estimate (eph 1898 m, not the 13.6 m epx/epy circle)", async () => {
    const agent = await doubtfulAgent('agent-eph', 'large-eph', 'gateway');
    const { recordId } = await agent.send({ cpu: 0.3 });
    const payload = metricsPayloadSchema.parse(
      JSON.parse(collector.records.find((r) => r.recordId === recordId)!.raw),
    );
    expect(payload.location).toMatchObject({ quality: 'GNSS' });
    expect(payload.location!.accuracy).toBeGreaterThanOrEqual(1898);
    expect(payload.geographic_region).toEqual({ region: 'US', state: 'California' });
    // A policy with max_accuracy_m holds the signed (worst) estimate against its limit.
    const strict = await agentOn('agent-eph-strict', {
      port: doubtful.port,
      device: doubtful.devices['large-eph']!,
      via: collector.url,
      policy: { ...CALIFORNIA, max_accuracy_m: 100 },
    });
    const err = await rejection(strict);
    expect({ status: err.status, vt: err.validationType, by: err.rejectedBy }).toEqual({
      status: 403,
      vt: 'geolocation_policy',
      by: 'collector',
    });
    expect(err.details).toMatchObject({ check: 'accuracy', expected: { max_accuracy_m: 100 } });
    expect((err.details!.received as { accuracy: number }).accuracy).toBeGreaterThanOrEqual(1898);
  });

  it('signs nothing for a fix dated a year ahead', async () => {
    const agent = await doubtfulAgent('agent-future', 'future', 'gateway');
    const before = { ...gateway.hits };
    const err = await agent.send({ cpu: 0.3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoLocationError);
    expect((err as NoLocationError).code).toBe('future_fix');
    expect(gateway.hits).toEqual(before);
  });
});

describe('a receiver that jumps across the continent', () => {
  /** Longitude of the jumping receiver's current fix, read by a probe of our own. */
  const probe = () =>
    gpsdLocation({ port: jumping.port, device: jumping.devices.jumping!, maxFixAgeSeconds: 300 });
  const west = (lon: number) => Math.abs(lon - -120) < 0.01;
  const east = (lon: number) => Math.abs(lon - -94) < 0.01;
  async function waitFor(p: ReturnType<typeof probe>, side: (lon: number) => boolean): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = (await p.current()).reading;
      if (r && side(r.lon)) {
        // Let the agent's own gpsd connection see the same report; the side then holds for 4 s.
        await new Promise((resolve) => setTimeout(resolve, 200));
        return;
      }
      if (Date.now() > deadline) throw new Error('the jumping receiver never reached that side');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it(
    'the agent signs both fixes as GNSS; the collector accepts the first and refuses the jump (implausible_movement)',
    { timeout: 180_000 },
    async () => {
      const p = probe();
      try {
        const agent = await agentOn('agent-jump', {
          port: jumping.port,
          device: jumping.devices.jumping!,
          via: gateway.url,
          policy: { allow: [{ region: 'US' }], max_fix_age_seconds: 600 },
        });
        await waitFor(p, west);
        const { recordId } = await agent.send({ cpu: 0.1 });
        const first = metricsPayloadSchema.parse(
          JSON.parse(collector.records.find((r) => r.recordId === recordId)!.raw),
        );
        expect(first.location).toMatchObject({ quality: 'GNSS' });
        expect(first.location!.lat).toBeCloseTo(35, 2);
        // Whichever side the first send caught, the next one is taken on the other.
        const firstWest = west(first.location!.lon);
        expect(firstWest || east(first.location!.lon)).toBe(true);
        await waitFor(p, firstWest ? east : west);
        const stored = collector.records.length;
        const err = (await agent.send({ cpu: 0.1 }).catch((e: unknown) => e)) as GeofenceRejection;
        expect(err).toBeInstanceOf(GeofenceRejection);
        // The gateway keeps no positions and lets it through; the collector refuses it.
        expect({
          status: err.status,
          vt: err.validationType,
          by: err.rejectedBy,
          check: err.details?.check,
        }).toEqual({
          status: 403,
          vt: 'geolocation_policy',
          by: 'collector',
          check: 'implausible_movement',
        });
        const received = err.details!.received as {
          distance_m: number;
          elapsed_seconds: number;
          previous: { lon: number; fix_time: string };
          current: { lon: number; lat: number };
        };
        // What the agent signed: the other side of the jump, as a GNSS fix at 35°N.
        expect((firstWest ? east : west)(received.current.lon)).toBe(true);
        expect(received.current.lat).toBeCloseTo(35, 2);
        expect(received.previous.lon).toBeCloseTo(first.location!.lon, 6);
        expect(received.previous.fix_time).toBe(new Date(first.location!.fix_time!).toISOString());
        expect(received.distance_m).toBeGreaterThan(2_300_000);
        expect(received.distance_m).toBeLessThan(2_400_000);
        expect(received.elapsed_seconds).toBeGreaterThan(0);
        expect(received.elapsed_seconds).toBeLessThan(60);
        expect(collector.records.length).toBe(stored);
        // Back on the first side, the agent is accepted again: the refused fix was never the reference.
        await waitFor(p, firstWest ? west : east);
        await agent.send({ cpu: 0.1 });
        expect(collector.records.length).toBe(stored + 1);
      } finally {
        await p.close?.();
      }
    },
  );
});
