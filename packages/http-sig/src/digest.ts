import * as nodeCrypto from 'node:crypto';
import { createHash, timingSafeEqual } from 'node:crypto';
import { HttpSigError } from './errors.js';
import { parseSfDictionary, type SfDictionary } from './sf.js';

/**
 * RFC 9530 digest algorithms this package computes and checks.
 *
 * @public
 */
export type DigestAlgorithm = 'sha-256' | 'sha-512';

const HASHES: Readonly<Record<DigestAlgorithm, string>> = { 'sha-256': 'sha256', 'sha-512': 'sha512' };
const encoder = new TextEncoder();

function bodyBytes(body: Uint8Array | string | undefined): Uint8Array {
  if (body === undefined) return new Uint8Array(0);
  return typeof body === 'string' ? encoder.encode(body) : body;
}

/**
 * The full `Content-Digest` header value for `body` (RFC 9530 §2), e.g. `sha-256=:X48E…=:`.
 * A string body is hashed as UTF-8.
 *
 * @public
 */
export function contentDigest(
  body: Uint8Array | string | undefined,
  algorithm: DigestAlgorithm = 'sha-256',
): string {
  const hash = HASHES[algorithm];
  if (hash === undefined) throw new HttpSigError('unsupported', `digest algorithm ${String(algorithm)}`);
  return `${algorithm}=:${createHash(hash).update(bodyBytes(body)).digest('base64')}:`;
}

const SHA256_ONLY = /^sha-256=:([A-Za-z0-9+/]{43}=):$/;

/** One-shot `crypto.hash` (Node ≥ 20.12) skips the Hash object; older Node 20 releases use createHash. */
const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'base64') => string }).hash;
function sha256Base64(body: Uint8Array): string {
  return oneShot !== undefined
    ? oneShot('sha256', body, 'base64')
    : createHash('sha256').update(body).digest('base64');
}

/**
 * Checks a `Content-Digest` (or `Repr-Digest`) header value against the body.
 *
 * Every `sha-256`/`sha-512` member present must match; other algorithms (including the insecure ones RFC 9530
 * deprecates) are ignored. Throws `HttpSigError` with code `malformed` (not a structured dictionary, or a
 * member that is not a byte sequence), `unsupported` (no `sha-256`/`sha-512` member) or `digest_mismatch`.
 *
 * @public
 */
export function verifyContentDigest(headerValue: string, body: Uint8Array | string | undefined): void {
  // The one form agents send: `sha-256=:<canonical base64 of 32 bytes>:`. Equal text means equal
  // bytes; any other text (a mismatch, or a non-canonical encoding of the same bytes) is decided by
  // the structured-field path below, so answers and errors stay the same.
  const m = SHA256_ONLY.exec(headerValue);
  if (m !== null && sha256Base64(bodyBytes(body)) === m[1]) return;
  let dict: SfDictionary;
  try {
    dict = parseSfDictionary(headerValue);
  } catch (err) {
    throw new HttpSigError('malformed', 'Content-Digest is not a structured dictionary', { cause: err });
  }
  let checked = 0;
  const bytes = bodyBytes(body);
  for (const algorithm of ['sha-256', 'sha-512'] as const) {
    const member = dict.get(algorithm);
    if (member === undefined) continue;
    const value = member[0];
    if (!(value instanceof Uint8Array)) {
      throw new HttpSigError('malformed', `Content-Digest ${algorithm} is not a byte sequence`);
    }
    const expected = createHash(HASHES[algorithm]).update(bytes).digest();
    const got = value;
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new HttpSigError('digest_mismatch', `Content-Digest ${algorithm} does not match the body`);
    }
    checked++;
  }
  if (checked === 0) throw new HttpSigError('unsupported', 'Content-Digest has no sha-256 or sha-512 member');
}
