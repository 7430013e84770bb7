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
  doubtful = await startGpsfake(DOUBTFUL_TRACKS);
});

afterAll(async () => {
  for (const a of agents) await a.close();
  await gps?.stop();
  await doubtful?.stop();
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
