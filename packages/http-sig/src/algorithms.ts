import {
  constants,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  type JsonWebKey,
  KeyObject,
  timingSafeEqual,
} from 'node:crypto';
import { toLowS } from './ecdsa-low-s.js';
import { HttpSigError } from './errors.js';
import type { SignatureAlgorithm, VerificationKeyInput } from './types.js';

/**
 * Static facts about one RFC 9421 algorithm.
 *
 * @public
 */
export interface AlgorithmInfo {
  /** RFC 9421 §6.2.2 name. */
  name: SignatureAlgorithm;
  /** Key type(s) (`KeyObject.asymmetricKeyType`, or `secret`) the algorithm accepts. */
  keyTypes: readonly string[];
  /** Digest used, or `null` when the algorithm hashes internally (Ed25519). */
  hash: 'sha256' | 'sha512' | null;
  /** Length in bytes of a wire signature, or `null` when it depends on the key (RSA). */
  signatureLength: number | null;
}

/**
 * The algorithms this package implements (RFC 9421 §3.3).
 *
 * @public
 */
export const ALGORITHMS: Readonly<Record<SignatureAlgorithm, AlgorithmInfo>> = Object.freeze({
  'ecdsa-p256-sha256': { name: 'ecdsa-p256-sha256', keyTypes: ['ec'], hash: 'sha256', signatureLength: 64 },
  'rsa-v1_5-sha256': { name: 'rsa-v1_5-sha256', keyTypes: ['rsa'], hash: 'sha256', signatureLength: null },
  'rsa-pss-sha512': {
    name: 'rsa-pss-sha512',
    keyTypes: ['rsa', 'rsa-pss'],
    hash: 'sha512',
    signatureLength: null,
  },
  ed25519: { name: 'ed25519', keyTypes: ['ed25519'], hash: null, signatureLength: 64 },
  'hmac-sha256': { name: 'hmac-sha256', keyTypes: ['secret'], hash: 'sha256', signatureLength: 32 },
});

/**
 * Whether `value` is the name of an algorithm this package implements.
 *
 * @public
 */
export function isSignatureAlgorithm(value: unknown): value is SignatureAlgorithm {
  return typeof value === 'string' && Object.hasOwn(ALGORITHMS, value);
}

/** Minimum RSA modulus we accept; RFC 9421 does not set one, 2048 is today's floor. */
const MIN_RSA_BITS = 2048;
/** Minimum HMAC key length: the output size of SHA-256 (RFC 2104 §3 recommends at least L bytes). */
const MIN_HMAC_BYTES = 32;

function keyTypeOf(key: KeyObject): string {
  return key.type === 'secret' ? 'secret' : (key.asymmetricKeyType ?? 'unknown');
}

/**
 * Checks that `key` is usable with `alg` and throws `alg_mismatch` otherwise.
 * Returns nothing: callers cache the positive result per KeyObject.
 */
export function assertKeyMatchesAlg(key: KeyObject, alg: SignatureAlgorithm): void {
  const info = ALGORITHMS[alg];
  const type = keyTypeOf(key);
  if (!info.keyTypes.includes(type)) {
    throw new HttpSigError('alg_mismatch', `a ${type} key cannot be used with ${alg}`);
  }
  if (alg === 'ecdsa-p256-sha256') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== 'prime256v1') {
      throw new HttpSigError('alg_mismatch', `ecdsa-p256-sha256 needs a P-256 key, got curve ${curve}`);
    }
  } else if (alg === 'rsa-v1_5-sha256' || alg === 'rsa-pss-sha512') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new HttpSigError('alg_mismatch', `RSA key of ${bits} bits is below ${MIN_RSA_BITS}`);
    }
    // An RSASSA-PSS key may be restricted to other digests; then it cannot serve rsa-pss-sha512.
    const details = key.asymmetricKeyDetails;
    if (type === 'rsa-pss' && details?.hashAlgorithm !== undefined && details.hashAlgorithm !== 'sha512') {
      throw new HttpSigError('alg_mismatch', `RSA-PSS key restricted to ${details.hashAlgorithm}`);
    }
  } else if (alg === 'hmac-sha256') {
    if ((key.symmetricKeySize ?? 0) < MIN_HMAC_BYTES) {
      throw new HttpSigError('alg_mismatch', `hmac-sha256 key shorter than ${MIN_HMAC_BYTES} bytes`);
    }
  }
}

/**
 * Algorithm implied by a key's type when no `alg` parameter is present and the caller pinned none.
 * Plain RSA keys are ambiguous (v1.5 or PSS) and yield `undefined`.
 */
export function algorithmForKey(key: KeyObject): SignatureAlgorithm | undefined {
  switch (keyTypeOf(key)) {
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'ecdsa-p256-sha256' : undefined;
    case 'ed25519':
      return 'ed25519';
    case 'rsa-pss':
      return 'rsa-pss-sha512';
    case 'secret':
      return 'hmac-sha256';
    default:
      return undefined;
  }
}

function isJwk(value: unknown): value is JsonWebKey {
  return typeof value === 'object' && value !== null && typeof (value as { kty?: unknown }).kty === 'string';
}

/** Imported verification keys, keyed by the caller's own object (KeyObject or JWK) so lookups stay cheap. */
const importedByObject = new WeakMap<object, KeyObject>();
/** Imported PEM strings; bounded so a caller returning fresh PEMs cannot grow memory without limit. */
const importedByPem = new Map<string, KeyObject>();
const PEM_CACHE_MAX = 1024;

/**
 * Turns a key-lookup result into a `KeyObject` usable for verification, caching the import.
 * Private keys are reduced to their public half; a secret key stays secret (HMAC).
 */
export function importVerificationKey(input: VerificationKeyInput): KeyObject {
  if (input instanceof KeyObject) {
    if (input.type !== 'private') return input;
    let pub = importedByObject.get(input);
    if (pub === undefined) {
      pub = createPublicKey(input);
      importedByObject.set(input, pub);
    }
    return pub;
  }
  try {
    if (typeof input === 'string') {
      let key = importedByPem.get(input);
      if (key === undefined) {
        key = createPublicKey(input);
        if (importedByPem.size >= PEM_CACHE_MAX) importedByPem.clear();
        importedByPem.set(input, key);
      }
      return key;
    }
    if (isJwk(input)) {
      let key = importedByObject.get(input);
      if (key === undefined) {
        key =
          input.kty === 'oct'
            ? createSecretKey(Buffer.from(String(input.k), 'base64url'))
            : publicFromJwk(input);
        importedByObject.set(input, key);
      }
      return key;
    }
  } catch (err) {
    throw new HttpSigError('unknown_key', 'the key returned by keyLookup cannot be imported', { cause: err });
  }
  throw new HttpSigError('unknown_key', 'keyLookup returned neither a KeyObject, a JWK nor a PEM string');
}

function publicFromJwk(jwk: JsonWebKey): KeyObject {
  return createPublicKey({ key: jwk, format: 'jwk' });
}

/**
 * Turns a signing key (KeyObject, PEM or JWK) into a private or secret `KeyObject`.
 */
export function importSigningKey(input: KeyObject | string | JsonWebKey): KeyObject {
  if (input instanceof KeyObject) {
    if (input.type === 'public') throw new HttpSigError('alg_mismatch', 'a public key cannot sign');
    return input;
  }
  try {
    if (typeof input === 'string') return createPrivateKey(input);
    if (isJwk(input)) {
      return input.kty === 'oct'
        ? createSecretKey(Buffer.from(String(input.k), 'base64url'))
        : createPrivateKey({ key: input, format: 'jwk' });
    }
  } catch (err) {
    throw new HttpSigError('malformed', 'signing key cannot be imported', { cause: err });
  }
  throw new HttpSigError('malformed', 'signing key must be a KeyObject, a PEM string or a JWK');
}

/**
 * Produces the wire signature of `data`. `key` must already have passed {@link assertKeyMatchesAlg}.
 */
export function signBytes(alg: SignatureAlgorithm, key: KeyObject, data: Uint8Array): Uint8Array {
  switch (alg) {
    case 'ecdsa-p256-sha256':
      // Low-s, so that our own signatures pass verifiers that require it (requireLowS).
      return toLowS(cryptoSign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }));
    case 'rsa-v1_5-sha256':
      return cryptoSign('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING });
    case 'rsa-pss-sha512':
      // RFC 9421 §3.3.1: salt length 64 bytes (node's default would be the maximum).
      return cryptoSign('sha512', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 });
    case 'ed25519':
      return cryptoSign(null, data, key);
    case 'hmac-sha256':
      return createHmac('sha256', key).update(data).digest();
  }
}

/**
 * Checks a wire signature. Returns `false` on any mismatch, including a wrong length.
 * `key` must already have passed {@link assertKeyMatchesAlg}.
 */
export function verifyBytes(
  alg: SignatureAlgorithm,
  key: KeyObject,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  const expectedLength = ALGORITHMS[alg].signatureLength;
  if (expectedLength !== null && signature.length !== expectedLength) return false;
  switch (alg) {
    case 'ecdsa-p256-sha256':
      return cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    case 'rsa-v1_5-sha256':
      return cryptoVerify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    case 'rsa-pss-sha512':
      return cryptoVerify(
        'sha512',
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 },
        signature,
      );
    case 'ed25519':
      return cryptoVerify(null, data, key, signature);
    case 'hmac-sha256': {
      const mac = createHmac('sha256', key).update(data).digest();
      return timingSafeEqual(mac, signature);
    }
  }
}
