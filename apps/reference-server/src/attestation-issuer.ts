/**
 * The collector as issuer of PoG credentials: one P-256 key signs attestation-result JWTs (JWKS at
 * `/.well-known/jwks.json`) and, as the attestation CA, PoG certificates (CA certificate at
 * `/.well-known/geofence-ca.pem`). Extra CA certificates (the next key before it signs, the previous
 * one until its credentials expired) are published in both documents: the rotation of
 * docs/operations.md.
 */
import { createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  AttestationResultSigner,
  jwkThumbprint,
  loadPogCaCertificates,
  PogCertificateAuthority,
} from '@geofence/verifier';
import type { JWK } from 'jose';
import type { Config } from './config.js';

/** What the collector issues credentials with. */
export interface AttestationIssuer {
  /** Signs attestation-result JWTs; its JWKS lists the current and the extra keys. */
  signer: AttestationResultSigner;
  /** Issues PoG certificates. */
  ca: PogCertificateAuthority;
  /** PEM text published at `/.well-known/geofence-ca.pem`: the current CA certificate, then the extra ones. */
  caBundlePem: string;
}

function createKeyFile(path: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  try {
    // 'wx': replicas starting together on one data directory end up with one key, not several.
    writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
  } catch {
    // created by another process first: use that one
  }
}

function certMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    return new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }).equals(spki);
  } catch {
    return false;
  }
}

/**
 * Opens the issuer: the configured key (`ATTESTATION_SIGNING_KEY_PATH`) or one generated once into
 * `<dataDir>/attestation-key.pem` (0600); the configured CA certificate (`ATTESTATION_CA_CERT_PATH`,
 * which must be for that key) or a self-signed one kept in `<dataDir>/attestation-ca.pem` and
 * re-created when the key changed; extra CA certificates from `ATTESTATION_EXTRA_CA_PATHS`.
 */
export async function openAttestationIssuer(cfg: Config, issuer: string): Promise<AttestationIssuer> {
  let keyPath = cfg.enrollment.signingKeyPath ? resolve(cfg.enrollment.signingKeyPath) : undefined;
  if (!keyPath) {
    mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
    keyPath = join(cfg.dataDir, 'attestation-key.pem');
    if (!existsSync(keyPath)) createKeyFile(keyPath);
  }
  const keyPem = readFileSync(keyPath, 'utf8');

  let ca: PogCertificateAuthority;
  if (cfg.enrollment.caCertPath) {
    ca = await PogCertificateAuthority.create({
      key: keyPem,
      certificate: readFileSync(resolve(cfg.enrollment.caCertPath), 'utf8'),
    });
  } else {
    const certPath = join(cfg.dataDir, 'attestation-ca.pem');
    const existing = existsSync(certPath) ? readFileSync(certPath, 'utf8') : undefined;
    if (existing !== undefined && certMatchesKey(existing, keyPem)) {
      ca = await PogCertificateAuthority.create({ key: keyPem, certificate: existing });
    } else {
      ca = await PogCertificateAuthority.create({ key: keyPem });
      const tmp = `${certPath}.${process.pid}.tmp`;
      writeFileSync(tmp, ca.certificatePem, { mode: 0o644 });
      renameSync(tmp, certPath);
    }
  }

  const extraPems = cfg.enrollment.extraCaPaths.map((p) => readFileSync(resolve(p), 'utf8'));
  const extra = extraPems.length > 0 ? loadPogCaCertificates(extraPems) : [];
  const previousPublicKeys: JWK[] = [];
  for (const c of extra) {
    const jwk = c.publicKey.export({ format: 'jwk' }) as JWK;
    // kid as the signer names its own key (the RFC 7638 thumbprint), so JWTs it signed still resolve.
    previousPublicKeys.push({ ...jwk, kid: await jwkThumbprint(jwk), alg: 'ES256', use: 'sig' });
  }
  const signer = await AttestationResultSigner.create({
    key: keyPem,
    issuer: cfg.enrollment.issuer ?? issuer,
    ttlSeconds: cfg.enrollment.credentialLifetimeSeconds,
    previousPublicKeys,
  });
  const caBundlePem = [ca.certificatePem, ...extra.map((c) => c.toString())].map((p) => p.trim()).join('\n');
  return { signer, ca, caBundlePem: `${caBundlePem}\n` };
}
