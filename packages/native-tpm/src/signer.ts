import { createHash } from 'node:crypto';
import { toLowS } from '@geofence/http-sig';
import { keyIdOfPublic, parsePublic } from '@geofence/tpm-wire';
import { TpmError } from './errors.js';
import type { Tpm } from './tpm.js';
import type { TpmKey } from './types.js';

/** RFC 9421 algorithms a TPM key can produce (SPEC §3). @public */
export type TpmSignatureAlgorithm = 'ecdsa-p256-sha256' | 'rsa-v1_5-sha256';

/**
 * A signer backed by a TPM key; structurally compatible with `Signer` of `@geofence/http-sig`.
 * @public
 */
export interface TpmSigner {
  /** Value of the RFC 9421 `keyid` parameter. */
  keyid: string;
  /** RFC 9421 algorithm name. */
  alg: TpmSignatureAlgorithm;
  /** SHA-256 hashes `data` and signs the digest in the TPM. */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** Options of {@link tpmSigner}. @public */
export interface TpmSignerOptions {
  /** `keyid` to advertise. Default: the SPEC §3 keyid, lowercase hex SHA-256 of the key's SPKI DER. */
  keyid?: string;
  /** Algorithm; must match the key. Default: derived from the key's public area. */
  alg?: TpmSignatureAlgorithm;
}

/**
 * Adapts a TPM signing key to the `Signer` interface of `@geofence/http-sig`: data is hashed with
 * SHA-256 in process and the digest is signed by `tpm.sign` (ECDSA raw r‖s or RSASSA-PKCS1-v1_5).
 *
 * @example
 * ```ts
 * const signer = tpmSigner(tpm, appKey);
 * const headers = await signRequest(message, { signer, components: ['@method', '@path'] });
 * ```
 * @public
 */
export function tpmSigner(tpm: Tpm, key: TpmKey, options: TpmSignerOptions = {}): TpmSigner {
  const pub = parsePublic(key.public);
  if (!pub.attributes.sign || pub.attributes.restricted) {
    throw new TpmError('invalid_argument', 'tpmSigner: key is not an unrestricted signing key');
  }
  const natural: TpmSignatureAlgorithm = pub.type === 'ecc' ? 'ecdsa-p256-sha256' : 'rsa-v1_5-sha256';
  if (pub.type === 'ecc' && pub.ecc?.curve !== 'p256') {
    throw new TpmError('invalid_argument', 'tpmSigner: only NIST P-256 ECC keys are supported');
  }
  const alg = options.alg ?? natural;
  if (alg !== natural) {
    throw new TpmError('invalid_argument', `tpmSigner: alg ${alg} does not match the ${pub.type} key`);
  }
  const keyid = options.keyid ?? keyIdOfPublic(pub);
  return {
    keyid,
    alg,
    // A TPM returns either s or n − s; verifiers of the geofence profile accept only low-s.
    sign: async (data: Uint8Array) => {
      const signature = await tpm.sign(key, createHash('sha256').update(data).digest());
      return alg === 'ecdsa-p256-sha256' ? toLowS(signature) : signature;
    },
  };
}
