import type { JsonWebKey, KeyObject } from 'node:crypto';

/**
 * RFC 9421 §6.2.2 algorithm names supported by this package.
 *
 * @public
 */
export type SignatureAlgorithm =
  | 'ecdsa-p256-sha256'
  | 'rsa-v1_5-sha256'
  | 'rsa-pss-sha512'
  | 'ed25519'
  | 'hmac-sha256';

/**
 * Something that signs a signature base. The signer owns the hashing: it receives the raw signature base bytes
 * and returns the signature in its RFC 9421 wire form (ECDSA P-256: raw `r‖s`, 64 bytes; RSA: modulus-sized;
 * Ed25519: 64 bytes; HMAC: 32 bytes). `sign` may be slow and asynchronous (e.g. a TPM).
 *
 * @public
 */
export interface Signer {
  /** Value of the `keyid` signature parameter. */
  keyid: string;
  /** Algorithm the signer produces; written as the `alg` parameter. */
  alg: SignatureAlgorithm;
  /** Signs the signature base bytes. */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/**
 * Header fields of a message. A plain record (as Node's `IncomingMessage.headers` / `headersDistinct`) with
 * any-case names, or a WHATWG `Headers`. Array values are separate field lines, in order.
 *
 * @public
 */
export type HeaderFields = Record<string, string | string[] | undefined> | Headers;

/**
 * The parts of an HTTP message that RFC 9421 components are derived from.
 *
 * @public
 */
export interface HttpMessage {
  /** Request method, case preserved (RFC 9421 §2.2.1 does not normalise it). Ignored for responses. */
  method: string;
  /**
   * Absolute target URI (`https://host/path?query`). An origin-form target (`/path?query`) is accepted too,
   * but then `@authority`, `@scheme` and `@target-uri` cannot be derived.
   */
  url: string;
  /** Header fields. */
  headers: HeaderFields;
  /** Body bytes (used by callers for `Content-Digest`; never by the signature base itself). */
  body?: Uint8Array | string;
  /** Status code; set only for responses (enables `@status`, disables request-derived components). */
  status?: number;
}

/**
 * A verification key as returned from a key lookup: a `KeyObject`, a JWK or a PEM string. For `hmac-sha256`
 * only a secret `KeyObject` or an `oct` JWK is accepted (a string would be ambiguous).
 *
 * @public
 */
export type VerificationKeyInput = KeyObject | JsonWebKey | string;

/**
 * A key lookup result that also pins the algorithm. Needed when the signature carries no `alg` parameter and
 * the key type alone is ambiguous (a plain RSA key can be `rsa-v1_5-sha256` or `rsa-pss-sha512`).
 *
 * @public
 */
export interface PinnedVerificationKey {
  /** The key. */
  key: VerificationKeyInput;
  /** The only algorithm this key may be used with. */
  alg: SignatureAlgorithm;
}
