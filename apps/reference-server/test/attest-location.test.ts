/**
 * `POST /attest/location` at the reference collector enforces the platform policy enrolment enforces
 * (approved image digests) and names the sealed point with the shipped reverse-geocoding table, so a
 * region-only geo policy can be appraised. Real swtpm, real collector over HTTPS.
 */

import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAgent, type Agent as GeofenceAgent, GeofenceRejection, staticLocation } from '@geofence/agent';
import { type SwtpmInstance, startSwtpm } from '@geofence/native-tpm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { upsertPreRegistration } from '../src/preregistrations.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { SANTA_CLARA } from './helpers/soft-agent.js';

// Real processes (swtpm, collector) on a shared 2-core machine: generous per-test bound.
vi.setConfig({ testTimeout: 120_000 });

let swtpm: SwtpmInstance;
let col: RunningCollector;
let agent: GeofenceAgent;
let imagePath: string;

beforeAll(async () => {
  const { dir, pki } = await testDataDir('attestloc');
  swtpm = await startSwtpm({ stateDir: join(dir, 'swtpm') });
  imagePath = join(dir, 'workload.js');
  writeFileSync(imagePath, 'console.log("workload v1");\n');
  const approved = createHash('sha256').update('console.log("workload v1");\n').digest('hex');
  // Region/state policy: appraisable only through the place table's boundaries and the sealed
  // point's accuracy circle (the table has no cities, so a city entry could not be appraised).
  upsertPreRegistration(dir, {
    agent_name: 'agent-001',
    ek: 'any-trusted-ca',
    geo_policy: { allow: [{ region: SANTA_CLARA.region, state: SANTA_CLARA.state }] },
  });
  col = await startCollector(
    testConfig('collector', dir, { enrollment: { approvedImageDigests: [approved] } }),
    { log: silentLog, ekCaCertificates: swtpm.ekCaCertificates },
  );
  agent = createAgent({
    name: 'agent-001',
    tpm: { tcti: swtpm.tcti },
    gateway: col.url,
    tls: { ca: pki.ca },
    location: staticLocation({ ...SANTA_CLARA, lat: 37.354, lon: -121.955, accuracy: 20 }),
    stateDir: join(dir, 'agent-state'),
    outbox: false,
    retry: { attempts: 1 },
    logger: silentLog,
  });
  const enrolled = await agent.enroll({ workload: { name: 'metrics-agent', version: '1.0.0', imagePath } });
  expect(enrolled.status).toBe('active');
});

afterAll(async () => {
  await agent?.close();
  await col?.close();
  await swtpm?.stop();
});

const claims = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as {
    geofence: Record<string, unknown>;
  };

async function rejection(p: Promise<unknown>): Promise<GeofenceRejection> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GeofenceRejection);
  return err as GeofenceRejection;
}

describe('POST /attest/location at the collector', () => {
  it('appraises a region-only policy and verifies the workload against the approved digests', async () => {
    const out = await agent.attestLocation();
    // `verified`: the approved-digest list was applied (with an empty platform policy it says `recorded`).
    expect(claims(out.attestationResult).geofence).toMatchObject({
      residency: 'tpm+geofence',
      agent_integrity: 'verified',
    });
    const outside = await rejection(
      agent.attestLocation({ location: { lat: 52.52, lon: 13.405, accuracy: 20 } }),
    );
    expect(outside.details).toMatchObject({ check: 'geofence', geo_check: 'region' });
    // Inside California, but a 200 km accuracy circle reaches Nevada and the sea: not wholly inside.
    const vague = await rejection(
      agent.attestLocation({ location: { lat: 37.354, lon: -121.955, accuracy: 200_000 } }),
    );
    expect(vague.details).toMatchObject({ check: 'geofence', geo_check: 'region' });
  });

  it('the result and the stored /metrics verdict carry accuracy, fix time and the matched place', async () => {
    const out = await agent.attestLocation();
    const sealed = out.bundle['geolocation-payload'] as { fix_time: string };
    expect(claims(out.attestationResult).geofence).toMatchObject({
      accuracy_m: 20,
      fix_time: sealed.fix_time,
      geo: [{ matched: { region: 'US', state: 'California' }, matched_by: 'boundary', place: 'US-CA' }],
    });
    const { recordId } = await agent.send({ cpu: 0.25 });
    const rec = await col.deps.records.get(recordId);
    // The static reading has an accuracy but no receiver fix time: the verdict says what it has.
    expect(rec?.verdict).toMatchObject({
      accuracy_m: 20,
      geo: [{ matched: { region: 'US', state: 'California' }, matched_by: 'boundary', place: 'US-CA' }],
    });
    expect(rec?.verdict).not.toHaveProperty('fix_time');
  });

  it('refuses a sealed jump across California faster than MAX_SPEED_KMH (implausible_movement)', async () => {
    await agent.attestLocation();
    // San Diego is inside the allowed state too, but ~670 km away a moment later.
    const jump = await rejection(
      agent.attestLocation({ location: { lat: 32.7157, lon: -117.1611, accuracy: 20 } }),
    );
    expect({ status: jump.status, vt: jump.validationType, check: jump.details?.check }).toEqual({
      status: 403,
      vt: 'geolocation_policy',
      check: 'implausible_movement',
    });
    expect(jump.details).toMatchObject({ expected: { max_speed_kmh: 1000 } });
    // The refused point did not become the reference: Santa Clara is still accepted.
    await agent.attestLocation();
  });

  it('refuses a workload image that is not approved', async () => {
    writeFileSync(imagePath, 'console.log("workload v2, not approved");\n');
    try {
      const err = await rejection(agent.attestLocation());
      expect({ vt: err.validationType, check: err.details?.check }).toEqual({
        vt: 'attestation',
        check: 'workload_digest',
      });
    } finally {
      writeFileSync(imagePath, 'console.log("workload v1");\n');
    }
  });
});
