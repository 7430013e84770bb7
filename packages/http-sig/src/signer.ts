import type { JsonWebKey, KeyObject } from 'node:crypto';
import { assertKeyMatchesAlg, importSigningKey, isSignatureAlgorithm, signBytes } from './algorithms.js';
import { HttpSigError } from './errors.js';
import type { SignatureAlgorithm, Signer } from './types.js';

/**
 * Options of {@link createSigner}.
 *
 * @public
 */
export interface CreateSignerOptions {
  /** Private key (KeyObject, PKCS#8/SEC1/PKCS#1 PEM, or private JWK); for `hmac-sha256` a secret KeyObject or `oct` JWK. */
  key: KeyObject | string | JsonWebKey;
  /** Algorithm; the key type must match (else `alg_mismatch`). */
  alg: SignatureAlgorithm;
  /** `keyid` signature parameter. */
  keyid: string;
}

/**
 * A {@link Signer} over a software key. The key is imported and checked against `alg` once, here.
 *
 * @example
 * ```ts
 * const signer = createSigner({ key: privateKeyPem, alg: 'ecdsa-p256-sha256', keyid: 'my-key' });
 * ```
 *
 * @public
 */
export function createSigner(options: CreateSignerOptions): Signer {
  const { alg, keyid } = options;
  if (!isSignatureAlgorithm(alg))
    throw new HttpSigError('unsupported', `algorithm ${String(alg)} is not supported`);
  const key = importSigningKey(options.key);
  assertKeyMatchesAlg(key, alg);
  return {
    keyid,
    alg,
    sign: async (data: Uint8Array) => signBytes(alg, key, data),
  };
}
