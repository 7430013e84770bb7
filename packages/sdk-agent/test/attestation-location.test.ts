/**
 * Location attestation (V-PEA lah-bundle, SPEC §5.4) against swtpm: the success path over real HTTP,
 * and the rejections of issue 5 item 3 — outside the fence, tampered payload, another TPM's AK
 * (a second swtpm), reused nonce, timestamp outside the window — plus a changed workload.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SwtpmInstance, startSwtpm, Tpm } from '@geofence/native-tpm';
import { marshalPublic, parsePublic, publicToJwk, publicToPem, publicToSpkiDer } from '@geofence/tpm-wire';
import {
  AttestationResultSigner,
  type EnrollmentPolicy,
  EnrollmentService,
  type GeoPolicy,
  geolocationIdHash,
  type Jwks,
  type LocationAppraisalContext,
  MemoryNonceStore,
  mountAttestationExpress,
  SqliteRegistry,
  verifyAttestationResult,
} from '@geofence/verifier';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AttestationPost,
  performEnrollment,
  performLocationAttestation,
  type StoredEnrollment,
} from '../src/attestation/index.js';
import { GeofenceRejection } from '../src/errors.js';
import { NoLocationError } from '../src/location/types.js';
import { AgentState } from '../src/state.js';

const SANTA_CLARA: GeoPolicy = {
  fences: [
    {
      type: 'Polygon',
      coordinates: [
        [
          [-122.1, 37.2],
          [-121.8, 37.2],
          [-121.8, 37.5],
          [-122.1, 37.5],
          [-122.1, 37.2],
        ],
      ],
    },
  ],
};
const INSIDE = { lat: 37.354, lon: -121.955, accuracy: 8.5 };
const BERLIN = { lat: 52.52, lon: 13.405, accuracy: 5 };
const SENSOR = { type: 'gnss', model: 'u-blox M8', serial: 'SN-4711', firmware: 'ROM 3.01' };

let swtpmA: SwtpmInstance;
let swtpmB: SwtpmInstance;
let tpmA: Tpm;
let tpmB: Tpm;
let dir: string;
let imagePath: string;
let registry: SqliteRegistry;
let nonces: MemoryNonceStore;
let signer: AttestationResultSigner;
let state: AgentState;
let enrollment: StoredEnrollment;
let server: ReturnType<ReturnType<typeof express>['listen']>;
let base: string;

const post: AttestationPost = async (path, json) => {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(json),
  });
  return { status: res.status, body: await res.json() };
};
const nonce = async (keyid: string) => {
  const res = await fetch(`${base}/nonce?public_key_hash=${keyid}`);
  return ((await res.json()) as { nonce: string }).nonce;
};
/** A `post` that lets a test rewrite the request body on the wire (a man in the middle). */
const tampering =
  (edit: (body: Record<string, unknown>, bundle: Record<string, unknown>) => void): AttestationPost =>
  (path, json) => {
    const body = structuredClone(json) as Record<string, unknown>;
    edit(body, body['lah-bundle'] as Record<string, unknown>);
    return post(path, body);
  };

async function expectRejected(p: Promise<unknown>, check: string, extra?: Record<string, unknown>) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected rejection ${check}`).toBeInstanceOf(GeofenceRejection);
  const r = err as GeofenceRejection;
  expect({ status: r.status, vt: r.validationType, check: r.details?.check }).toEqual({
    status: 403,
    // An authentic bundle at a place the policy does not allow is a geolocation refusal.
    vt: check === 'geofence' ? 'geolocation_policy' : 'attestation',
    check,
  });
  if (extra) expect(r.details).toMatchObject(extra);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lah-test-'));
  [swtpmA, swtpmB] = await Promise.all([startSwtpm(), startSwtpm()]);
  [tpmA, tpmB] = await Promise.all([Tpm.open({ tcti: swtpmA.tcti }), Tpm.open({ tcti: swtpmB.tcti })]);
  imagePath = join(dir, 'workload.js');
  writeFileSync(imagePath, 'console.log("workload v1");\n');
  registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  nonces = new MemoryNonceStore();
  signer = await AttestationResultSigner.create({
    key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    issuer: 'https://collector.test',
  });
  const policy: EnrollmentPolicy = {
    ekCaBundle: swtpmA.ekCaCertificates,
    agents: [{ agentName: 'agent-geo', ek: 'any-trusted-ca', geoPolicy: SANTA_CLARA }],
  };
  const enrollmentService = new EnrollmentService({ registry, signer, policy });
  const location: LocationAppraisalContext = { registry, nonces, signer, policy };
  const app = express();
  app.get('/nonce', async (req, res) => {
    const issued = await nonces.issue(String(req.query.public_key_hash));
    res.json({
      nonce: issued.nonce,
      expires_at: issued.expiresAt.toISOString(),
      expires_in: issued.expiresIn,
    });
  });
  mountAttestationExpress(app, { enrollment: enrollmentService, location, signer });
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  state = AgentState.open(join(dir, 'state-geo'));
  enrollment = await performEnrollment({
    agentName: 'agent-geo',
    tpm: tpmA,
    state,
    post,
    workload: { name: 'metrics-agent', version: '1.0.0', imagePath },
    sensor: SENSOR,
  });
});

afterAll(async () => {
  if (server) await new Promise((r) => server.close(r));
  await registry?.close();
  await Promise.all([tpmA?.close(), tpmB?.close()]);
  await Promise.all([swtpmA?.stop(), swtpmB?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('lah-bundle appraisal', () => {
  it('accepts a sealed location inside the fence and returns a verifiable tpm+geofence result', async () => {
    const out = await performLocationAttestation({ tpm: tpmA, state, post, nonce, location: INSIDE });
    expect(out.trustLevel).toBe('low');
    expect(out.bundle['privacy-technique']).toBe('none');
    // A reading without a fix time is sealed as measured now (the bundle's timestamp).
    const sealed = out.bundle['geolocation-payload'] as { fix_time: string };
    expect(out.bundle['geolocation-payload']).toEqual({ ...INSIDE, fix_time: sealed.fix_time });
    expect(Math.floor(Date.parse(sealed.fix_time) / 1000)).toBe(out.bundle.timestamp);
    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as Jwks;
    const { payload } = await verifyAttestationResult(out.attestationResult, jwks, {
      subject: 'agent-geo',
      appKey: publicToJwk(state.storedAppKey()?.key.public as Uint8Array) as never,
    });
    expect(payload.geofence).toMatchObject({
      keyid: enrollment.keyid,
      residency: 'tpm+geofence',
      trust_level: 'low',
      evidence: 'lah-bundle',
      geolocation_proof_hash: out.bundle['geolocation-proof-hash'],
      attested_at: out.bundle.timestamp,
      accuracy_m: INSIDE.accuracy,
      fix_time: sealed.fix_time,
      // The agent's policy (fences only) matched its first fence.
      geo: [{ fence: { index: 0 } }],
    });
  });

  it("seals the receiver's fix time, not the time the bundle is built", async () => {
    const fix = new Date(Date.now() - 7_000).toISOString();
    const out = await performLocationAttestation({
      tpm: tpmA,
      state,
      post,
      nonce,
      location: { ...INSIDE, fix_time: fix },
    });
    expect(out.bundle['geolocation-payload']).toEqual({ ...INSIDE, fix_time: fix });
    expect(out.bundle.timestamp).toBeGreaterThanOrEqual(Math.floor(Date.parse(fix) / 1000) + 6);
    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as Jwks;
    const { payload } = await verifyAttestationResult(out.attestationResult, jwks);
    expect(payload.geofence).toMatchObject({ fix_time: fix, accuracy_m: INSIDE.accuracy });
  });

  it('refuses to seal a fix dated in the future beyond the clock skew (nothing is sent)', async () => {
    let posts = 0;
    const counting: AttestationPost = (path, json) => {
      posts++;
      return post(path, json);
    };
    const err = await performLocationAttestation({
      tpm: tpmA,
      state,
      post: counting,
      nonce,
      location: { ...INSIDE, fix_time: new Date(Date.now() + 3_600_000).toISOString() },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoLocationError);
    expect((err as NoLocationError).code).toBe('future_fix');
    expect(posts).toBe(0);
  });

  it('the verifier refuses a sealed future fix too (an agent with a lax skew)', async () => {
    await expectRejected(
      performLocationAttestation({
        tpm: tpmA,
        state,
        post,
        nonce,
        location: { ...INSIDE, fix_time: new Date(Date.now() + 3_600_000).toISOString() },
        clockSkewSeconds: 7_200,
      }),
      'geofence',
      { geo_check: 'fix_in_future', expected: { clock_skew_seconds: 60 } },
    );
  });

  it('applies max_fix_age_seconds to the sealed fix time', async () => {
    const record = (await registry.getByName('agent-geo'))!;
    await registry.put({ ...record, geo_policy: { ...SANTA_CLARA, max_fix_age_seconds: 600 } });
    try {
      const old = new Date(Date.now() - 3_600_000).toISOString();
      await expectRejected(
        performLocationAttestation({ tpm: tpmA, state, post, nonce, location: { ...INSIDE, fix_time: old } }),
        'geofence',
        { geo_check: 'fix_age', received: { fix_time: old } },
      );
      // A fresh fix (the bundle's timestamp is fresh either way) passes the same policy.
      const fresh = new Date(Date.now() - 5_000).toISOString();
      await performLocationAttestation({
        tpm: tpmA,
        state,
        post,
        nonce,
        location: { ...INSIDE, fix_time: fresh },
      });
    } finally {
      await registry.put(record);
    }
  });

  it('refuses a jump faster than the maximum speed as geolocation_policy implausible_movement', async () => {
    const record = (await registry.getByName('agent-geo'))!;
    await registry.put({ ...record, geo_policy: { allow: [{ region: 'US' }] } });
    try {
      // Newer than every fix an earlier test sealed: this one becomes the agent's last position.
      const t0 = Date.now();
      await performLocationAttestation({
        tpm: tpmA,
        state,
        post,
        nonce,
        location: { ...INSIDE, fix_time: new Date(t0).toISOString() },
      });
      // New York, one second later: ~4100 km.
      const err = (await performLocationAttestation({
        tpm: tpmA,
        state,
        post,
        nonce,
        location: { lat: 40.7128, lon: -74.006, accuracy: 10, fix_time: new Date(t0 + 1_000).toISOString() },
      }).catch((e: unknown) => e)) as GeofenceRejection;
      expect(err).toBeInstanceOf(GeofenceRejection);
      expect({ status: err.status, vt: err.validationType, check: err.details?.check }).toEqual({
        status: 403,
        vt: 'geolocation_policy',
        check: 'implausible_movement',
      });
      expect(err.details).toMatchObject({
        expected: { max_speed_kmh: 1000 },
        received: { elapsed_seconds: 1, previous: { lat: INSIDE.lat, lon: INSIDE.lon } },
      });
      expect((err.details?.received as { distance_m: number }).distance_m).toBeGreaterThan(4_000_000);
      // Half a kilometre in a second is 1800 km/h — but with 300 m accuracy circles the two fixes
      // may be the same place: not a movement.
      await performLocationAttestation({
        tpm: tpmA,
        state,
        post,
        nonce,
        location: {
          lat: INSIDE.lat + 0.0045,
          lon: INSIDE.lon,
          accuracy: 300,
          fix_time: new Date(t0 + 1_000).toISOString(),
        },
      });
      // That last fix is dated up to a second ahead of the clock and stays the agent's reference: the
      // next tests seal "now" at the same place, so wait until it is two seconds in the past, else a
      // loaded machine runs them close enough to it to look like 175 m in a fraction of a second.
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + 3_000 - Date.now())));
    } finally {
      await registry.put(record);
    }
  });

  it('rejects a location outside the fence', async () => {
    await expectRejected(
      performLocationAttestation({ tpm: tpmA, state, post, nonce, location: BERLIN }),
      'geofence',
      { geo_check: 'fence' },
    );
  });

  it('rejects a tampered geolocation-payload', async () => {
    const edited = tampering((_b, bundle) => {
      (bundle['geolocation-payload'] as { lat: number }).lat = INSIDE.lat + 0.01;
    });
    await expectRejected(
      performLocationAttestation({ tpm: tpmA, state, post: edited, nonce, location: BERLIN }),
      'geolocation_proof_hash',
    );
  });

  it('rejects a bundle quoted by another TPM (second swtpm)', async () => {
    // Agent B copies agent-geo's enrolment but only has its own TPM and AK.
    const akB = await tpmB.createAk({ alg: 'ecc-p256' });
    const stateB = AgentState.open(join(dir, 'state-b'));
    stateB.saveEnrollment({ ...enrollment, ak: akB });
    await expectRejected(
      performLocationAttestation({ tpm: tpmB, state: stateB, post, nonce, location: INSIDE }),
      'ak_not_enrolled',
    );
    // Claiming agent-geo's AK (and its sensor binding) does not help: the seal does not verify.
    const akA = enrollment.ak.public;
    const impersonate = tampering((body, bundle) => {
      body.ak_public = Buffer.from(akA).toString('base64url');
      bundle['tpm-ak'] = publicToPem(akA);
      bundle['geolocation-id-hash'] = geolocationIdHash(publicToSpkiDer(akA), SENSOR);
    });
    await expectRejected(
      performLocationAttestation({ tpm: tpmB, state: stateB, post: impersonate, nonce, location: INSIDE }),
      'quote',
      { code: 'bad_signature' },
    );
  });

  it('rejects an AK public area that is not the enrolled one, even with the same key', async () => {
    const enrolled = parsePublic(enrollment.ak.public);
    // Same key, one more attribute bit (noDA): a different object as far as the TPM is concerned.
    const forged = marshalPublic({ ...enrolled, objectAttributes: enrolled.objectAttributes | (1 << 10) });
    const edited = tampering((body) => {
      body.ak_public = Buffer.from(forged).toString('base64url');
    });
    await expectRejected(
      performLocationAttestation({ tpm: tpmA, state, post: edited, nonce, location: INSIDE }),
      'ak_public',
    );
  });

  it('rejects a reused nonce', async () => {
    let sent: unknown;
    const recording: AttestationPost = (path, json) => {
      sent = json;
      return post(path, json);
    };
    await performLocationAttestation({ tpm: tpmA, state, post: recording, nonce, location: INSIDE });
    const replay = await post('/attest/location', sent);
    expect(replay.status).toBe(403);
    expect(replay.body).toMatchObject({
      validation_type: 'attestation',
      details: { check: 'nonce', code: 'reused' },
    });
  });

  it('rejects a timestamp outside the freshness window', async () => {
    await expectRejected(
      performLocationAttestation({
        tpm: tpmA,
        state,
        post,
        nonce,
        location: INSIDE,
        now: () => new Date(Date.now() - 400_000),
      }),
      'timestamp_window',
    );
  });

  it('rejects a nonce issued to another agent', async () => {
    await expectRejected(
      performLocationAttestation({
        tpm: tpmA,
        state,
        post,
        nonce: () => nonce('ab'.repeat(32)),
        location: INSIDE,
      }),
      'nonce',
    );
  });

  it('appraises region-only geo policies with the shipped reverse-geocoding table by default', async () => {
    // The collector's context passes no reverseGeocode: the place table maps the sealed point.
    const record = (await registry.getByName('agent-geo'))!;
    await registry.put({ ...record, geo_policy: { allow: [{ region: 'US', state: 'California' }] } });
    try {
      const out = await performLocationAttestation({ tpm: tpmA, state, post, nonce, location: INSIDE });
      expect(out.trustLevel).toBe('low');
      await expectRejected(
        performLocationAttestation({ tpm: tpmA, state, post, nonce, location: BERLIN }),
        'geofence',
        { geo_check: 'region', received: { region: { region: 'DE', state: 'Berlin' } } },
      );
    } finally {
      await registry.put(record);
    }
  });

  it('rejects a workload that changed since enrolment', async () => {
    writeFileSync(imagePath, 'console.log("workload v2 (tampered)");\n');
    try {
      await expectRejected(
        performLocationAttestation({ tpm: tpmA, state, post, nonce, location: INSIDE }),
        'workload_digest',
      );
    } finally {
      writeFileSync(imagePath, 'console.log("workload v1");\n');
    }
  });
});
