/**
 * Rotation of the collector's credential key (docs/operations.md): an extra CA certificate is
 * published in the JWKS (kid = its RFC 7638 thumbprint) and in the CA bundle, so credentials of the
 * previous key keep verifying — with jose, against the JWKS the new collector serves — and PoG
 * certificates of the next key verify against the bundle before it signs anything.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttestationResultSigner,
  loadPogCaCertificates,
  PogCertificateAuthority,
  verifyPogCertificate,
} from '@geofence/verifier';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { openAttestationIssuer } from '../src/attestation-issuer.js';
import { loadConfig } from '../src/config.js';

const claim = {
  keyid: 'a'.repeat(64),
  ek_hash: 'b'.repeat(64),
  workload_digest: 'c'.repeat(64),
  platform_integrity: 'recorded',
  agent_integrity: 'recorded',
  residency: 'tpm+geofence',
  trust_level: 'low',
  evidence: 'lah-bundle',
} as const;

describe('attestation issuer key rotation', () => {
  it('publishes the extra CA in JWKS and bundle; old credentials and the persisted CA stay valid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gf-issuer-'));
    const oldKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const oldCa = await PogCertificateAuthority.create({ key: oldKey, subject: 'CN=old attestation CA' });
    writeFileSync(join(dir, 'old-ca.pem'), oldCa.certificatePem);
    const cfg = loadConfig({
      role: 'collector',
      env: {},
      cwd: dir,
      overrides: { dataDir: dir, enrollment: { extraCaPaths: [join(dir, 'old-ca.pem')] } },
    });
    const issuer = await openAttestationIssuer(cfg, 'https://collector.test');

    const jwks = issuer.signer.jwks();
    expect(jwks.keys).toHaveLength(2);
    const oldSigner = await AttestationResultSigner.create({ key: oldKey, issuer: 'https://collector.test' });
    expect(jwks.keys.map((k) => k.kid)).toContain(oldSigner.kid);
    const app = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const oldJwt = await oldSigner.sign('agent-001', app, claim);
    const { payload } = await jwtVerify(oldJwt, createLocalJWKSet(jwks), {
      issuer: 'https://collector.test',
    });
    expect(payload.sub).toBe('agent-001');

    const anchors = loadPogCaCertificates(issuer.caBundlePem);
    expect(anchors).toHaveLength(2);
    const issued = await oldSigner.issue('agent-001', app, claim);
    await expect(
      verifyPogCertificate(await oldCa.issue(issued.payload, app), anchors),
    ).resolves.toBeDefined();
    const current = await issuer.signer.issue('agent-001', app, claim);
    await expect(
      verifyPogCertificate(await issuer.ca.issue(current.payload, app), anchors),
    ).resolves.toMatchObject({ payload: { sub: 'agent-001' } });

    // The generated CA certificate is kept and reused while the key stays the same.
    const again = await openAttestationIssuer(cfg, 'https://collector.test');
    expect(again.ca.certificatePem).toBe(issuer.ca.certificatePem);
    expect(readFileSync(join(dir, 'attestation-ca.pem'), 'utf8')).toBe(issuer.ca.certificatePem);
  });
});
