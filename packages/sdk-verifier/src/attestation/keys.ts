/**
 * Parsing and attribute checks of the three TPM keys of SPEC §3 (EK, AK, AppSK). Parsing itself is
 * `@geofence/tpm-wire`'s; this module only decides which shapes are acceptable.
 */

import { fromB64u } from '@geofence/protocol';
import type { TpmPublic } from '@geofence/tpm-wire';
import { parsePublic, TpmWireError } from '@geofence/tpm-wire';
import type { AttestationCheck } from './errors.js';
import { attestationError } from './errors.js';

/**
 * Decodes base64url TPM2B_PUBLIC bytes and parses them, rejecting with `check` on any failure.
 */
export function parseKey(b64u: string, check: AttestationCheck, what: string): TpmPublic {
  const bytes = fromB64u(b64u);
  if (!bytes) throw attestationError(check, `${what} is not base64url`);
  try {
    return parsePublic(bytes);
  } catch (err) {
    const code = err instanceof TpmWireError ? err.code : 'malformed';
    throw attestationError(check, `${what} is not a valid TPM2B_PUBLIC`, { code }, err);
  }
}

function supportedAlg(pub: TpmPublic): boolean {
  if (pub.type === 'ecc') return pub.ecc?.curve === 'p256';
  return pub.type === 'rsa' && pub.rsa?.keyBits === 2048;
}

/**
 * The EK must be a restricted decryption key that never leaves its TPM (TCG EK templates): that
 * is what makes MakeCredential to it prove TPM residency of the AK.
 */
export function checkEk(ek: TpmPublic): void {
  const a = ek.attributes;
  if (!(a.restricted && a.decrypt && !a.sign && a.fixedTPM && a.fixedParent)) {
    throw attestationError('ek_public', 'EK is not a restricted, non-duplicable decryption key', {
      attributes: describe(ek),
    });
  }
  if (!supportedAlg(ek)) throw attestationError('ek_public', 'EK must be RSA-2048 or ECC P-256');
}

/**
 * The AK must be a restricted signing key (it only signs TPM-generated attestation structures,
 * so nobody can make it sign a forged TPMS_ATTEST) generated in and bound to the TPM.
 */
export function checkAk(ak: TpmPublic): void {
  const a = ak.attributes;
  const failed: string[] = [];
  if (!a.restricted) failed.push('restricted');
  if (!a.sign) failed.push('sign');
  if (a.decrypt) failed.push('!decrypt');
  if (!a.fixedTPM) failed.push('fixedTPM');
  if (!a.fixedParent) failed.push('fixedParent');
  if (!a.sensitiveDataOrigin) failed.push('sensitiveDataOrigin');
  if (failed.length > 0) {
    throw attestationError(
      'ak_attributes',
      'AK is not a restricted, non-duplicable, TPM-generated signing key',
      {
        failed,
      },
    );
  }
  if (!supportedAlg(ak)) throw attestationError('ak_attributes', 'AK must be RSA-2048 or ECC P-256');
}

/**
 * The AppSK must be an unrestricted signing key that was generated in the TPM and cannot be
 * duplicated (SPEC §3), with a scheme compatible with the RFC 9421 profile; returns its algorithm.
 */
export function checkAppKey(app: TpmPublic): 'ecdsa-p256-sha256' | 'rsa-v1_5-sha256' {
  const a = app.attributes;
  const failed: string[] = [];
  if (!a.sign) failed.push('sign');
  if (a.restricted) failed.push('!restricted');
  if (a.decrypt) failed.push('!decrypt');
  if (!a.fixedTPM) failed.push('fixedTPM');
  if (!a.fixedParent) failed.push('fixedParent');
  if (!a.sensitiveDataOrigin) failed.push('sensitiveDataOrigin');
  if (failed.length > 0) {
    throw attestationError('app_key_attributes', 'AppSK is not a non-duplicable, TPM-generated signing key', {
      failed,
    });
  }
  if (app.type === 'ecc' && app.ecc?.curve === 'p256') {
    const scheme = app.ecc.scheme;
    if (!scheme || (scheme.scheme === 'ecdsa' && scheme.hashAlg === 'sha256')) return 'ecdsa-p256-sha256';
  }
  if (app.type === 'rsa' && app.rsa?.keyBits === 2048) {
    const scheme = app.rsa.scheme;
    if (!scheme || (scheme.scheme === 'rsassa' && scheme.hashAlg === 'sha256')) return 'rsa-v1_5-sha256';
  }
  throw attestationError('app_key_attributes', 'AppSK must be ECC P-256/ECDSA or RSA-2048/RSASSA-PKCS1-v1_5');
}

function describe(pub: TpmPublic): string[] {
  return Object.entries(pub.attributes)
    .filter(([, v]) => v)
    .map(([k]) => k);
}
