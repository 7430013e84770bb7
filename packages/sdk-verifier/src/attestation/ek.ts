/**
 * EK trust: the EK certificate must be issued by a CA from the configured EK CA bundle and carry
 * exactly the EK public key the agent presented. Pure `node:crypto` (no native TPM code).
 */

import type { KeyObject } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { attestationError } from './errors.js';

/** A parsed, ready-to-use EK CA bundle. */
export interface EkTrustAnchors {
  /** The CA certificates any EK certificate must be issued by (directly). */
  readonly certificates: readonly X509Certificate[];
}

/**
 * Splits PEM text (one or many concatenated `CERTIFICATE` blocks, or an array of them) into
 * parsed certificates. Throws `TypeError` on blocks that do not parse, because a half-loaded
 * trust store is a configuration error the operator must see at start.
 * @public
 */
export function loadEkCaBundle(pems: string | readonly string[]): EkTrustAnchors {
  const text = typeof pems === 'string' ? pems : pems.join('\n');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const certificates = blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new TypeError(`EK CA bundle: certificate #${i + 1} does not parse`, { cause: err });
    }
  });
  return { certificates };
}

function isValidAt(cert: X509Certificate, now: Date): boolean {
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  return Number.isFinite(from) && Number.isFinite(to) && from <= now.getTime() && now.getTime() <= to;
}

/** What {@link verifyEkCertificate} learnt about an accepted EK certificate. */
export interface EkCertificateInfo {
  /** Subject DN of the issuing CA (stored as `ek_cert_issuer`). */
  issuer: string;
  /** Serial number of the EK certificate (hex). */
  serialNumber: string;
  /** SHA-256 fingerprint of the EK certificate. */
  fingerprint256: string;
}

/**
 * Verifies an EK certificate (DER) against the trust anchors and the presented EK public key:
 * it parses, is inside its validity period, is issued (name chaining and signature) by a CA
 * certificate of the bundle that is itself valid and marked as a CA, and its subject public key
 * equals `ekPublicKey`. Throws the `attestation` rejection naming the failed check.
 */
export function verifyEkCertificate(
  der: Uint8Array,
  ekPublicKey: KeyObject,
  anchors: EkTrustAnchors,
  now: Date = new Date(),
): EkCertificateInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (err) {
    throw attestationError('ek_certificate', 'EK certificate is not a DER X.509 certificate', {}, err);
  }
  if (!isValidAt(cert, now)) {
    throw attestationError('ek_certificate', 'EK certificate is outside its validity period', {
      not_before: cert.validFrom,
      not_after: cert.validTo,
    });
  }
  const issuer = anchors.certificates.find(
    (ca) => ca.ca && isValidAt(ca, now) && cert.checkIssued(ca) && cert.verify(ca.publicKey),
  );
  if (!issuer) {
    throw attestationError('ek_certificate_chain', 'EK certificate is not issued by a trusted EK CA', {
      issuer: cert.issuer,
    });
  }
  if (!cert.publicKey.equals(ekPublicKey)) {
    throw attestationError(
      'ek_certificate_key',
      'EK certificate key differs from the presented EK public key',
    );
  }
  return { issuer: issuer.subject, serialNumber: cert.serialNumber, fingerprint256: cert.fingerprint256 };
}
