import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SwtpmInstance, startSwtpm, Tpm } from '@geofence/native-tpm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../src/agent.js';
import { GeofenceRejection } from '../src/errors.js';
import { builtinReverseGeocode, lookupRegion } from '../src/location/geocode.js';
import { staticLocation } from '../src/location/static.js';
import { startCollector, type TestCollector } from './helpers/collector.js';
import { makePki, type TestPki } from './helpers/pki.js';

/**
 * The Agent's enroll()/attestLocation() wiring (HTTP client, TPM, state) against the verifier's
 * attestation endpoints. The attestation protocol itself is tested in attestation*.test.ts.
 */
let swtpm: SwtpmInstance;
let tpm: Tpm;
let pki: TestPki;
let collector: TestCollector;
const agents: Agent[] = [];
const SANTA_CLARA = { region: 'US', state: 'California', city: 'Santa Clara' };

function agentNamed(
  name: string,
  location = staticLocation({ ...SANTA_CLARA, lat: 37.354, lon: -121.955, accuracy: 25 }),
) {
  const agent = createAgent({
    name,
    tpm,
    gateway: collector.url,
    tls: { ca: pki.caPem },
    location,
    stateDir: mkdtempSync(join(tmpdir(), `${name}-`)),
    outbox: false,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  agents.push(agent);
  return agent;
}

beforeAll(async () => {
  pki = makePki();
  swtpm = await startSwtpm({ timeoutMs: 60_000 });
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  collector = await startCollector(pki, {
    ekCaBundle: swtpm.ekCaCertificates,
    agents: [
      { agentName: 'agent-001', ek: 'any-trusted-ca', geoPolicy: { allow: [SANTA_CLARA] } },
      { agentName: 'agent-gnss', ek: 'any-trusted-ca', geoPolicy: { allow: [SANTA_CLARA] } },
    ],
    // The place table has no cities: the operator maps its site to a city with a box.
    reverseGeocode: (lat, lon) =>
      lookupRegion(lat, lon, [{ box: [-122.03, 37.32, -121.92, 37.42], place: SANTA_CLARA }]) ??
      builtinReverseGeocode(lat, lon),
  });
});

afterAll(async () => {
  for (const a of agents) await a.close();
  await collector?.stop();
  await tpm?.close();
  await swtpm?.stop();
});

describe('Agent.enroll / Agent.attestLocation', () => {
  it('enrols through the agent, then sends with the enrolled key and attests its location', async () => {
    const agent = agentNamed('agent-001');
    expect(agent.status().enrolled).toBe(false);
    const enrolment = await agent.enroll({ workload: { name: 'metrics-agent', version: '1.0.0' } });
    expect(enrolment).toMatchObject({ status: 'active', keyid: (await agent.ready()).keyid });
    expect(agent.status().enrolled).toBe(true);

    // No direct registration: the enrolment put the key into the registry.
    const { recordId } = await agent.send({ cpu: 0.5 });
    expect(collector.records.some((r) => r.recordId === recordId)).toBe(true);

    const outcome = await agent.attestLocation();
    expect(typeof outcome.attestationResult).toBe('string');
    // A configured site has no receiver clock: it is sealed as measured at the bundle's time.
    const { fix_time: fix, ...point } = outcome.bundle['geolocation-payload'] as { fix_time: string };
    expect(point).toEqual({ lat: 37.354, lon: -121.955, accuracy: 25 });
    expect(Math.floor(Date.parse(fix) / 1000)).toBe(outcome.bundle.timestamp);
  });

  it('surfaces a refused enrolment as GeofenceRejection (attestation)', async () => {
    const agent = agentNamed('agent-not-preregistered');
    const err = (await agent
      .enroll({ workload: { name: 'x', version: '1' } })
      .catch((e: unknown) => e)) as GeofenceRejection;
    expect(err).toBeInstanceOf(GeofenceRejection);
    expect(err.status).toBe(403);
    expect(err.validationType).toBe('attestation');
  });

  it('needs an enrolment and a reading with accuracy to attest a location', async () => {
    const notEnrolled = agentNamed('agent-002');
    await expect(notEnrolled.attestLocation()).rejects.toMatchObject({ code: 'not_enrolled' });
    const noCoords = agentNamed('agent-003', staticLocation(SANTA_CLARA));
    await expect(noCoords.attestLocation()).rejects.toMatchObject({ name: 'NoLocationError' });
  });

  it('does not seal a dead-reckoning or simulated reading (the bundle has no quality to say so)', async () => {
    for (const quality of ['dead-reckoning', 'simulated'] as const) {
      const agent = agentNamed(`agent-${quality}`, {
        kind: 'test',
        async current() {
          return {
            geographicRegion: SANTA_CLARA,
            quality,
            locationType: 'geographic-region',
            reading: { lat: 37.354, lon: -121.955, accuracy: 10, quality },
          };
        },
      });
      await expect(agent.attestLocation()).rejects.toMatchObject({
        name: 'NoLocationError',
        message: expect.stringContaining(quality),
      });
    }
  });

  it("seals the provider reading's own fix time and refuses one dated in the future", async () => {
    let fix = new Date(Date.now() - 4_000).toISOString();
    const agent = agentNamed('agent-gnss', {
      kind: 'test',
      async current() {
        return {
          geographicRegion: SANTA_CLARA,
          quality: 'GNSS',
          locationType: 'geographic-region',
          reading: { lat: 37.354, lon: -121.955, accuracy: 6, quality: 'GNSS', fix_time: fix },
        };
      },
    });
    await agent.enroll({ workload: { name: 'metrics-agent', version: '1.0.0' } });
    const out = await agent.attestLocation();
    expect(out.bundle['geolocation-payload']).toEqual({
      lat: 37.354,
      lon: -121.955,
      accuracy: 6,
      fix_time: fix,
    });
    expect(out.bundle.timestamp).toBeGreaterThan(Math.floor(Date.parse(fix) / 1000));
    fix = new Date(Date.now() + 86_400_000).toISOString();
    await expect(agent.attestLocation()).rejects.toMatchObject({
      name: 'NoLocationError',
      code: 'future_fix',
    });
  });
});
