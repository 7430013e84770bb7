import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CREDENTIAL_LIFETIME_SECONDS } from '@geofence/protocol';
import { parsePublic } from '@geofence/tpm-wire';
import express from 'express';
import Fastify from 'fastify';
import { exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAk, checkAppKey, checkEk } from '../src/attestation/keys.js';
import { PendingEnrollments } from '../src/attestation/pending.js';
import { appraisePlatform } from '../src/attestation/policy.js';
import {
  AttestationResultSigner,
  attestationFastifyPlugin,
  createAttestationHandlers,
  EnrollmentService,
  expectedWorkloadPcr,
  jwkThumbprint,
  loadEkCaBundle,
  mountAttestationExpress,
  requiredPcrSelection,
  validatePlatformPolicy,
  verifyAttestationResult,
  verifyEkCertificate,
} from '../src/index.js';
import { SqliteRegistry } from '../src/storage/sqlite-registry.js';
import { expectAttestationRejection } from './attestation/expect.js';
import { makeTestCa, type TestCa } from './attestation/pki.js';

const FIX = join(import.meta.dirname, '../../tpm-wire/test/fixtures');
const fixture = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));
const pub = (name: string) => parsePublic(fixture(`${name}.pub`));
const hex = (b: Uint8Array | Buffer) => Buffer.from(b).toString('hex');

describe('TPM key shapes (swtpm fixtures)', () => {
  it('accepts the TCG EKs, restricted AKs and unrestricted AppSKs', () => {
    for (const ek of ['ek-rsa', 'ek-ecc']) expect(() => checkEk(pub(ek))).not.toThrow();
    for (const ak of ['ak-rsa', 'ak-ecc', 'ak-rsapss']) expect(() => checkAk(pub(ak))).not.toThrow();
    expect(checkAppKey(pub('app-ecc'))).toBe('ecdsa-p256-sha256');
    expect(checkAppKey(pub('app-rsa'))).toBe('rsa-v1_5-sha256');
  });

  it('refuses an unrestricted key as AK and a restricted key as AppSK', async () => {
    await expectAttestationRejection(() => checkAk(pub('app-ecc')), 'ak_attributes', {
      failed: ['restricted'],
    });
    await expectAttestationRejection(() => checkAppKey(pub('ak-ecc')), 'app_key_attributes');
    await expectAttestationRejection(() => checkEk(pub('ak-rsa')), 'ek_public');
  });

  it('refuses an AppSK without fixedTPM', async () => {
    const app = pub('app-ecc');
    const bad = { ...app, attributes: { ...app.attributes, fixedTPM: false } };
    await expectAttestationRejection(() => checkAppKey(bad), 'app_key_attributes', { failed: ['fixedTPM'] });
  });
});

describe('EK certificate chain', () => {
  let ca: TestCa;
  let other: TestCa;
  beforeAll(() => {
    ca = makeTestCa('Vendor EK CA');
    other = makeTestCa('Rogue CA');
  });
  afterAll(() => {
    ca.cleanup();
    other.cleanup();
  });
  const ekKey = () => createPublicKey(readFileSync(join(FIX, 'ek-rsa.pem'), 'utf8'));

  it('accepts a certificate issued by a bundle CA for exactly this EK', () => {
    const der = ca.issue(readFileSync(join(FIX, 'ek-rsa.pem'), 'utf8'));
    const info = verifyEkCertificate(der, ekKey(), loadEkCaBundle([other.certPem, ca.certPem]));
    expect(info.issuer).toContain('Vendor EK CA');
  });

  it('rejects a certificate from an untrusted CA', async () => {
    const der = other.issue(readFileSync(join(FIX, 'ek-rsa.pem'), 'utf8'));
    await expectAttestationRejection(
      () => verifyEkCertificate(der, ekKey(), loadEkCaBundle(ca.certPem)),
      'ek_certificate_chain',
    );
  });

  it('rejects a certificate whose key is another EK', async () => {
    const der = ca.issue(readFileSync(join(FIX, 'ek-ecc.pem'), 'utf8'));
    await expectAttestationRejection(
      () => verifyEkCertificate(der, ekKey(), loadEkCaBundle(ca.certPem)),
      'ek_certificate_key',
    );
  });

  it('rejects expired and unparsable certificates', async () => {
    const der = ca.issue(readFileSync(join(FIX, 'ek-rsa.pem'), 'utf8'), 1);
    const later = new Date(Date.now() + 3 * 86_400_000);
    await expectAttestationRejection(
      () => verifyEkCertificate(der, ekKey(), loadEkCaBundle(ca.certPem), later),
      'ek_certificate',
    );
    await expectAttestationRejection(
      () => verifyEkCertificate(der.subarray(0, 100), ekKey(), loadEkCaBundle(ca.certPem)),
      'ek_certificate',
    );
  });

  it('does not treat a non-CA certificate in the bundle as an issuer', async () => {
    // The EK certificate itself (not a CA) in the bundle must not make a certificate it "issued" valid.
    const leafPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(ca.issue(readFileSync(join(FIX, 'ek-ecc.pem'), 'utf8'))).toString('base64')}\n-----END CERTIFICATE-----\n`;
    const der = other.issue(readFileSync(join(FIX, 'ek-rsa.pem'), 'utf8'));
    await expectAttestationRejection(
      () => verifyEkCertificate(der, ekKey(), loadEkCaBundle(leafPem)),
      'ek_certificate_chain',
    );
  });
});

describe('platform policy', () => {
  const zero = new Uint8Array(32);
  const digest = 'aa'.repeat(32);
  const selection = [{ bank: 'sha256' as const, pcrs: [0, 7, 23] }];
  const values = { sha256: { 0: zero, 7: new Uint8Array(32).fill(7), 23: expectedWorkloadPcr(digest) } };

  it('is record-only without reference values and selects PCRs 0-7', () => {
    expect(requiredPcrSelection({})).toEqual([{ bank: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }]);
    const r = appraisePlatform({ recordPcrs: selection }, selection, values, digest);
    expect(r.platformIntegrity).toBe('recorded');
    expect(r.agentIntegrity).toBe('recorded');
    expect(r.pcrs.sha256?.['7']).toBe('07'.repeat(32));
  });

  it('verifies reference values, approved digests and the workload PCR', () => {
    const policy = {
      pcrs: { sha256: { 0: ['11'.repeat(32), hex(zero)] } },
      workloadDigests: [digest],
      workloadPcr: 23,
    };
    validatePlatformPolicy(policy);
    expect(requiredPcrSelection(policy)).toEqual([{ bank: 'sha256', pcrs: [0, 23] }]);
    const r = appraisePlatform(policy, selection, values, digest);
    expect(r).toMatchObject({ platformIntegrity: 'verified', agentIntegrity: 'verified' });
  });

  it('names the failed check', async () => {
    await expectAttestationRejection(
      () => appraisePlatform({ pcrs: { sha256: { 7: hex(zero) } } }, selection, values, digest),
      'pcr_policy',
      { bank: 'sha256', pcr: 7 },
    );
    await expectAttestationRejection(
      () => appraisePlatform({ pcrs: { sha256: { 9: hex(zero) } } }, selection, values, digest),
      'pcr_selection',
      { pcr: 9 },
    );
    await expectAttestationRejection(
      () =>
        appraisePlatform(
          { workloadDigests: ['bb'.repeat(32)], recordPcrs: selection },
          selection,
          values,
          digest,
        ),
      'workload_digest',
    );
    await expectAttestationRejection(
      () => appraisePlatform({ workloadPcr: 23, recordPcrs: selection }, selection, values, 'cc'.repeat(32)),
      'workload_pcr',
    );
  });

  it('rejects malformed policies at configuration time', () => {
    expect(() => validatePlatformPolicy({ pcrs: { sha256: { 24: hex(zero) } } })).toThrow(TypeError);
    expect(() => validatePlatformPolicy({ pcrs: { sha256: { 0: 'AB'.repeat(32) } } })).toThrow(TypeError);
    expect(() => validatePlatformPolicy({ pcrs: { sha1: { 0: hex(zero) } } })).toThrow(TypeError);
    expect(() => validatePlatformPolicy({ workloadDigests: ['xyz'] })).toThrow(TypeError);
  });
});

describe('attestation result JWT', () => {
  const collector = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const app = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const claim = {
    keyid: 'ab'.repeat(32),
    ek_hash: 'cd'.repeat(32),
    workload_digest: 'ef'.repeat(32),
    platform_integrity: 'verified' as const,
    agent_integrity: 'recorded' as const,
    residency: 'tpm' as const,
    trust_level: 'none' as const,
    evidence: 'enrollment' as const,
  };

  it('signs ES256 results that verify with the JWKS and bind the AppSK', async () => {
    const signer = await AttestationResultSigner.create({
      key: collector.privateKey,
      issuer: 'https://c.example',
    });
    const jwt = await signer.sign('agent-001', app.publicKey, claim);
    const jwks = signer.jwks();
    expect(jwks.keys[0]).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
      alg: 'ES256',
      use: 'sig',
      kid: signer.kid,
    });
    expect(jwks.keys[0]).not.toHaveProperty('d');
    const { payload } = await verifyAttestationResult(jwt, jwks, {
      issuer: 'https://c.example',
      subject: 'agent-001',
      appKey: app.publicKey,
    });
    expect(payload.cnf.jkt).toBe(await jwkThumbprint(await exportJWK(app.publicKey)));
    expect(payload.geofence).toEqual(claim);
    expect(payload.exp - payload.iat).toBe(DEFAULT_CREDENTIAL_LIFETIME_SECONDS);
  });

  it('rejects another signer, another key binding, tampering and expiry', async () => {
    const signer = await AttestationResultSigner.create({
      key: collector.privateKey,
      issuer: 'i',
      ttlSeconds: 60,
    });
    const rogue = await AttestationResultSigner.create({
      key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      issuer: 'i',
      kid: signer.kid,
    });
    const jwt = await signer.sign('agent-001', app.publicKey, claim);
    await expect(
      verifyAttestationResult(await rogue.sign('agent-001', app.publicKey, claim), signer.jwks()),
    ).rejects.toThrow();
    await expect(
      verifyAttestationResult(jwt, signer.jwks(), { appKey: collector.publicKey }),
    ).rejects.toThrow(/cnf\.jkt/);
    const [h, p, s] = jwt.split('.');
    const forged = JSON.parse(Buffer.from(p ?? '', 'base64url').toString());
    forged.geofence.platform_integrity = 'verified';
    forged.sub = 'agent-002';
    const tampered = `${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}`;
    await expect(verifyAttestationResult(tampered, signer.jwks())).rejects.toThrow();
    await expect(
      verifyAttestationResult(jwt, signer.jwks(), { currentDate: new Date(Date.now() + 3600_000) }),
    ).rejects.toThrow();
  });

  it('enforces residency and approval requirements of the relying party', async () => {
    const signer = await AttestationResultSigner.create({ key: collector.privateKey, issuer: 'i' });
    const pending = await signer.sign('agent-001', app.publicKey, { ...claim, status: 'pending' });
    await expect(verifyAttestationResult(pending, signer.jwks(), { requireActive: true })).rejects.toThrow(
      /pending/,
    );
    await expect(
      verifyAttestationResult(pending, signer.jwks(), { requireResidency: 'tpm' }),
    ).resolves.toBeTruthy();
    await expect(
      verifyAttestationResult(pending, signer.jwks(), { requireResidency: 'tpm+geofence' }),
    ).rejects.toThrow(/geofence/);
    const located = await signer.sign('agent-001', app.publicKey, {
      ...claim,
      residency: 'tpm+geofence',
      trust_level: 'low',
      evidence: 'lah-bundle',
    });
    const { payload } = await verifyAttestationResult(located, signer.jwks(), {
      requireResidency: 'tpm+geofence',
    });
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses non-P-256 collector keys', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await expect(AttestationResultSigner.create({ key: rsa.privateKey, issuer: 'i' })).rejects.toThrow(
      TypeError,
    );
  });
});

describe('pending enrolments', () => {
  it('are single use, expire, and report replays', () => {
    const p = new PendingEnrollments<string>(300);
    p.put('a', 'secret-a', 0);
    p.put('b', 'secret-b', 0);
    expect(p.take('a', 1000)).toEqual({ status: 'ok', value: 'secret-a' });
    expect(p.take('a', 1000)).toEqual({ status: 'used' });
    expect(p.take('b', 301_000)).toEqual({ status: 'expired' });
    expect(p.take('zz', 0)).toEqual({ status: 'unknown' });
    p.sweep(700_000);
    expect(p.size).toBe(0);
  });

  it('are bounded', () => {
    const p = new PendingEnrollments<number>(300, 3);
    for (let i = 0; i < 10; i++) p.put(`id${i}`, i, 0);
    expect(p.size).toBe(3);
    expect(p.take('id0', 0).status).toBe('unknown');
    expect(p.take('id9', 0)).toEqual({ status: 'ok', value: 9 });
  });
});

describe('HTTP handlers', () => {
  it('answer problem+json for bad content type, size and JSON', async () => {
    const signer = await AttestationResultSigner.create({
      key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      issuer: 'i',
    });
    const h = createAttestationHandlers({ signer, bodyLimitBytes: 64 });
    const ct = await h.attestLocation({ body: new Uint8Array([123, 125]), contentType: 'text/plain' });
    expect(ct.status).toBe(415);
    expect(ct.headers['content-type']).toBe('application/problem+json');
    const big = await h.attestLocation({ body: new Uint8Array(65), contentType: 'application/json' });
    expect(big.status).toBe(413);
    const bad = await h.attestLocation({ body: '{nope', contentType: 'application/json', requestId: 'r1' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({
      validation_type: 'request_validation',
      rejected_by: 'collector',
      request_id: 'r1',
    });
    expect(h.jwks().body).toEqual(signer.jwks());
  });

  it('refuse duplicate member names on enrol, complete and attest, like POST /metrics (issue 16 item 5)', async () => {
    const signer = await AttestationResultSigner.create({
      key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      issuer: 'i',
    });
    const h = createAttestationHandlers({ signer });
    const contentType = 'application/json';
    // Last copy wins in JSON.parse, first copy in other parsers: the body means two things.
    const bodies = ['{"nonce":"a","nonce":"b"}', '{"x":{"k":1,"\\u006b":2}}', '[{"a":1},{"b":2,"b":3}]'];
    for (const body of bodies) {
      for (const res of [
        await h.enroll({ body, contentType }),
        await h.completeEnrollment('abc', { body, contentType }),
        await h.attestLocation({ body, contentType }),
      ]) {
        expect(res.status).toBe(400);
        expect(res.body).toMatchObject({
          validation_type: 'request_validation',
          error: 'Request body has duplicate member names',
        });
      }
    }
    // Without duplicates the body gets past decoding (and fails later, on its content).
    const fine = await h.attestLocation({ body: '{"nonce":"a"}', contentType });
    expect(fine.body).not.toMatchObject({ error: 'Request body has duplicate member names' });
  });
});

describe('Express and Fastify wiring', () => {
  const signerP = AttestationResultSigner.create({
    key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    issuer: 'i',
  });
  let tmp: string;
  let registry: SqliteRegistry;
  let enrollment: EnrollmentService;
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'att-http-'));
    registry = await SqliteRegistry.open({ path: join(tmp, 'r.db') });
    enrollment = new EnrollmentService({ registry, signer: await signerP, policy: {} });
  });
  afterAll(async () => {
    await registry.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  async function exercise(base: string) {
    const jwks = await fetch(`${base}/.well-known/jwks.json`);
    expect(jwks.status).toBe(200);
    expect(((await jwks.json()) as { keys: unknown[] }).keys).toHaveLength(1);
    const empty = await fetch(`${base}/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.status).toBe(400);
    const bad = await fetch(`${base}/enroll/abc/complete`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-42' },
      body: JSON.stringify({ secret: 'x' }),
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await bad.json()).toMatchObject({ validation_type: 'request_validation', status: 400 });
    const big = await fetch(`${base}/attest/location`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(5000) }),
    });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ validation_type: 'request_validation', status: 413 });
  }

  it('Express: the handlers read the raw bytes themselves', async () => {
    const signer = await signerP;
    const app = express();
    mountAttestationExpress(app, { signer, enrollment, bodyLimitBytes: 4096 });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      await exercise(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('Express: a JSON body parser in front is refused, not trusted (duplicate keys would be lost)', async () => {
    const signer = await signerP;
    const app = express();
    app.use(express.json({ limit: '4kb' }));
    mountAttestationExpress(app, { signer, enrollment, bodyLimitBytes: 4096 });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const r = await fetch(`${base}/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"agent_name":"a","agent_name":"b"}',
      });
      expect(r.status).toBe(500);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await r.json()).toMatchObject({ validation_type: 'internal' });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('Fastify plugin', async () => {
    const app = Fastify();
    await app.register(attestationFastifyPlugin, { signer: await signerP, enrollment, bodyLimitBytes: 4096 });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      await exercise(base);
    } finally {
      await app.close();
    }
  });
});
