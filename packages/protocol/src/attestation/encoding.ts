/**
 * Small, strict encoding helpers shared by the attestation modules. Strict means: inputs that a
 * lenient decoder would silently accept (padding, whitespace, non-alphabet characters, non-canonical
 * trailing bits) are rejected, so two different strings never decode to the same evidence.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { jcs } from '../protocol.js';

const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const HEX_RE = /^(?:[0-9a-f]{2})*$/;

/** Encodes bytes as unpadded base64url. */
export function toB64u(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Decodes unpadded base64url, or returns `undefined` when `text` is not canonical base64url
 * (wrong alphabet, padding, impossible length, or non-zero trailing bits).
 */
export function fromB64u(text: string): Uint8Array | undefined {
  if (!B64URL_RE.test(text) || text.length % 4 === 1) return undefined;
  const buf = Buffer.from(text, 'base64url');
  if (buf.toString('base64url') !== text) return undefined;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Decodes lowercase hex, or `undefined` for anything else (odd length, uppercase, other characters). */
export function fromHex(text: string): Uint8Array | undefined {
  if (!HEX_RE.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** SHA-256 of the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** RFC 8785 (JCS) serialisation as UTF-8 bytes; throws on values JSON cannot represent. */
export function jcsBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(jcs(value));
}

/** Constant-time equality of two byte strings (different lengths compare unequal). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return timingSafeEqual(a, b);
}
