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
    expect(out.bundle['geolocation-payload']).toEqual(INSIDE);
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
    });
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
