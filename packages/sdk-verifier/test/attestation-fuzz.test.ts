/**
 * Every attestation input path answers bad input with a GeofenceError of the aligned model
 * (`request_validation` or `attestation`, or `agent_verification` for unknown agents) — never an
 * untyped exception that would become a 500 — and keeps serving (SPEC §12.10). Inputs are random
 * JSON, and valid requests built from real swtpm fixtures with fields replaced by random bytes.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyIdOfPublic, publicToPem } from '@geofence/tpm-wire';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GeofenceError } from '../src/errors.js';
import {
  AttestationResultSigner,
  appraiseLocationBundle,
  EnrollmentService,
  type EnrollRequest,
  encodeQuoteSeal,
  geolocationIdHash,
  geolocationProofHash,
} from '../src/index.js';
import { MemoryNonceStore } from '../src/storage/memory-nonce-store.js';
import { SqliteRegistry } from '../src/storage/sqlite-registry.js';

const FIX = join(import.meta.dirname, '../../tpm-wire/test/fixtures');
const fixture = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const ALLOWED = new Set(['request_validation', 'attestation', 'agent_verification']);

let dir: string;
let registry: SqliteRegistry;
let service: EnrollmentService;
let signer: AttestationResultSigner;
const nonces = new MemoryNonceStore();
const ek = fixture('ek-rsa.pub');
const ak = fixture('ak-ecc.pub');
const app = fixture('app-ecc.pub');

const request = (): EnrollRequest => ({
  agent_name: 'fuzz-agent',
  ek: { public: b64u(ek) },
  ak: { public: b64u(ak) },
  app_key: { public: b64u(app) },
  workload: { name: 'w', version: '1', image_digest: 'ab'.repeat(32) },
  platform: { os: 'Linux', kernel: '6.1' },
});

async function expectTyped(p: Promise<unknown>): Promise<GeofenceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GeofenceError);
  expect(ALLOWED.has((err as GeofenceError).validationType)).toBe(true);
  return err as GeofenceError;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'att-fuzz-'));
  registry = await SqliteRegistry.open({ path: join(dir, 'r.db') });
  signer = await AttestationResultSigner.create({
    key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    issuer: 'i',
  });
  service = new EnrollmentService({ registry, signer, policy: { approvedEkHashes: [keyIdOfPublic(ek)] } });
  await registry.put({
    agent_name: 'geo-agent',
    keyid: keyIdOfPublic(app),
    alg: 'ecdsa-p256-sha256',
    app_public_key_pem: publicToPem(app),
    ak_public_pem: publicToPem(ak),
    ek_public_hash: keyIdOfPublic(ek),
    workload_digest: 'ab'.repeat(32),
    geo_policy: {
      fences: [
        {
          type: 'Polygon',
          coordinates: [
            [
              [0, 0],
              [1, 0],
              [1, 1],
              [0, 1],
              [0, 0],
            ],
          ],
        },
      ],
    },
    status: 'active',
  });
});

afterAll(async () => {
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('attestation input fuzzing', () => {
  it('POST /enroll: arbitrary JSON is a request_validation error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (v) => {
        expect((await expectTyped(service.start(v))).validationType).toBe('request_validation');
      }),
      { numRuns: 300 },
    );
  });

  it('POST /enroll: random TPM2B_PUBLIC bytes are rejected as attestation errors', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('ek', 'ak', 'app_key'),
        fc.uint8Array({ minLength: 1, maxLength: 400 }),
        async (field, bytes) => {
          const r = request();
          r[field as 'ek' | 'ak' | 'app_key'] = { public: b64u(bytes) };
          // A random app_key is only parsed here; it may parse as a key, then start succeeds.
          await service.start(r).then(
            () => expect(field).toBe('app_key'),
            (e: unknown) => {
              expect(e).toBeInstanceOf(GeofenceError);
              expect((e as GeofenceError).validationType).toBe('attestation');
            },
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('POST /enroll/{id}/complete: without the activated secret nothing else is looked at, and the id is spent', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.boolean(),
        async (attest, sig, realAttest) => {
          const ch = await service.start(request());
          const body = {
            secret: b64u(randomBytes(32)),
            certify: {
              attest: b64u(realAttest ? fixture('certify-ak-ecc.attest') : attest),
              signature: b64u(realAttest ? fixture('certify-ak-ecc.sig') : sig),
            },
            quote: { attest: b64u(attest), signature: b64u(sig), pcrs: { sha256: { '0': '00'.repeat(32) } } },
          };
          const e = await expectTyped(service.complete(ch.enrollment_id, body));
          expect(e.details?.check).toBe('credential_secret');
          expect((await expectTyped(service.complete(ch.enrollment_id, body))).details?.check).toBe(
            'enrollment_already_used',
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  it('POST /attest/location: random bundles and seals are rejected with typed errors', async () => {
    const akPem = publicToPem(ak);
    const payload = { lat: 0.5, lon: 0.5, accuracy: 10, fix_time: new Date().toISOString() };
    const base = () => ({
      agent_name: 'geo-agent',
      ak_public: b64u(ak),
      'lah-bundle': {
        'tpm-ak': akPem,
        'geolocation-id-hash': geolocationIdHash(
          new Uint8Array(Buffer.from(akPem.replace(/-----[^-]+-----|\s/g, ''), 'base64')),
          undefined,
        ),
        'geolocation-proof-hash': geolocationProofHash(payload),
        'privacy-technique': 'none',
        'geolocation-payload': payload,
        nonce: 'n'.repeat(43),
        timestamp: Math.floor(Date.now() / 1000),
        'tpm-quote-seal': encodeQuoteSeal(fixture('quote-ak-ecc.attest'), fixture('quote-ak-ecc.sig')),
        'target-environment-image-digest': 'ab'.repeat(32),
      },
      'pcr-values': { sha256: { '0': '00'.repeat(32) } },
    });
    const ctx = { registry, nonces, signer, policy: {} };
    // The real quote from the fixtures verifies under the AK but over another nonce.
    const real = await expectTyped(appraiseLocationBundle(base(), ctx));
    expect(real.details).toMatchObject({ check: 'quote' });
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 400 }),
        fc.constantFrom(
          'tpm-quote-seal',
          'geolocation-id-hash',
          'tpm-ak',
          'nonce',
          'timestamp',
          'payload',
          'ak_public',
        ),
        async (bytes, field) => {
          const body = base() as Record<string, unknown> & { 'lah-bundle': Record<string, unknown> };
          const bundle = body['lah-bundle'];
          if (field === 'timestamp') bundle.timestamp = bytes.length * 1_000_000;
          else if (field === 'payload')
            bundle['geolocation-payload'] = {
              lat: bytes[0] ?? 0,
              lon: 0.5,
              accuracy: 1,
              fix_time: payload.fix_time,
            };
          else if (field === 'ak_public') body.ak_public = b64u(bytes);
          else bundle[field] = b64u(bytes);
          await expectTyped(appraiseLocationBundle(body, ctx));
        },
      ),
      { numRuns: 300 },
    );
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (v) => {
        await expectTyped(appraiseLocationBundle(v, ctx));
      }),
      { numRuns: 200 },
    );
  });
});
