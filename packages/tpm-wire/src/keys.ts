import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { concat, toHex, Writer } from './buffer.js';
import { hashAlgId } from './constants.js';
import { TpmWireError } from './errors.js';
import { asPublic, type EccCurve, marshalTpmtPublic, type TpmPublic } from './public.js';

/** Curves node:crypto can import as JWK, with their field sizes in bytes. */
const NODE_CURVES: Partial<Record<EccCurve, { crv: string; size: number }>> = {
  p256: { crv: 'P-256', size: 32 },
  p384: { crv: 'P-384', size: 48 },
  p521: { crv: 'P-521', size: 66 },
};

/** Field size in bytes of a curve supported by node:crypto, or throws. @internal */
export function curveSize(curve: EccCurve): number {
  const c = NODE_CURVES[curve];
  if (!c) throw new TpmWireError('unsupported_algorithm', `curve ${curve} is not supported by node:crypto`);
  return c.size;
}

function b64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.length === size) return b;
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

function minimalBigEndian(n: number): Uint8Array {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Uint8Array.from(bytes);
}

/** Builds the JWK used to import the key; validates sizes so node:crypto sees only sane input. */
function rawJwk(pub: TpmPublic): JsonWebKey {
  if (pub.type === 'rsa' && pub.rsa) {
    const { keyBits, modulus } = pub.rsa;
    if (
      keyBits < 1024 ||
      keyBits % 8 !== 0 ||
      modulus.length !== keyBits / 8 ||
      modulus[0] === 0 ||
      ((modulus[modulus.length - 1] as number) & 1) === 0
    ) {
      throw new TpmWireError(
        'invalid_key',
        `RSA public: modulus of ${modulus.length} bytes is not an odd ${keyBits}-bit number`,
      );
    }
    const exponent = pub.rsa.exponent === 0 ? 65537 : pub.rsa.exponent;
    if (exponent < 3 || exponent % 2 === 0) throw new TpmWireError('invalid_key', `RSA public: bad exponent`);
    return { kty: 'RSA', n: b64u(modulus), e: b64u(minimalBigEndian(exponent)) };
  }
  if (pub.type === 'ecc' && pub.ecc) {
    const c = NODE_CURVES[pub.ecc.curve];
    if (!c) throw new TpmWireError('unsupported_algorithm', `curve ${pub.ecc.curve} is not supported`);
    const { x, y } = pub.ecc;
    if (x.length === 0 || y.length === 0 || x.length > c.size || y.length > c.size) {
      throw new TpmWireError('invalid_key', `ECC public: coordinates do not fit ${pub.ecc.curve}`);
    }
    return { kty: 'EC', crv: c.crv, x: b64u(leftPad(x, c.size)), y: b64u(leftPad(y, c.size)) };
  }
  throw new TpmWireError('invalid_key', 'public area has no key parameters');
}

/** What OpenSSL 3 computes slowly (JWK import ~0.3 ms, SPKI export ~0.6 ms), cached per key. */
interface CachedKey {
  key: KeyObject;
  spki?: Uint8Array;
  keyId?: string;
}

/**
 * Small LRU of imported public keys, keyed by their JWK (public data only). Verifiers see the same AKs and
 * application keys again and again; re-importing them dominated the cost of verifyCertify/verifyQuote.
 */
const keyCache = new Map<string, CachedKey>();
const KEY_CACHE_SIZE = 256;

function cachedKey(pub: TpmPublic | Uint8Array): CachedKey {
  const jwk = rawJwk(asPublic(pub));
  const id = JSON.stringify(jwk);
  const hit = keyCache.get(id);
  if (hit) {
    keyCache.delete(id);
    keyCache.set(id, hit);
    return hit;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch (cause) {
    throw new TpmWireError('invalid_key', 'public area is not a valid public key', { cause });
  }
  const entry: CachedKey = { key };
  keyCache.set(id, entry);
  if (keyCache.size > KEY_CACHE_SIZE) {
    const oldest = keyCache.keys().next().value;
    if (oldest !== undefined) keyCache.delete(oldest);
  }
  return entry;
}

/**
 * Converts a TPM public area to a node:crypto public `KeyObject` (RSA, or ECC on P-256/P-384/P-521).
 * ECC points are checked to lie on the curve. Imported keys are cached (LRU, public data only).
 * @param pub - parsed public or TPM2B_PUBLIC bytes
 * @returns the public key
 * @throws {@link TpmWireError} `invalid_key` for templates (empty unique) or inconsistent keys,
 * `unsupported_algorithm` for other curves
 * @public
 */
export function publicToKeyObject(pub: TpmPublic | Uint8Array): KeyObject {
  return cachedKey(pub).key;
}

/**
 * DER SubjectPublicKeyInfo of a TPM public area.
 * @param pub - parsed public or TPM2B_PUBLIC bytes
 * @returns SPKI DER bytes (a fresh copy)
 * @public
 */
export function publicToSpkiDer(pub: TpmPublic | Uint8Array): Uint8Array {
  const entry = cachedKey(pub);
  entry.spki ??= new Uint8Array(entry.key.export({ format: 'der', type: 'spki' }));
  return Uint8Array.from(entry.spki);
}

/**
 * PEM (`-----BEGIN PUBLIC KEY-----`) SubjectPublicKeyInfo of a TPM public area.
 * @param pub - parsed public or TPM2B_PUBLIC bytes
 * @returns PEM text ending with a newline
 * @public
 */
export function publicToPem(pub: TpmPublic | Uint8Array): string {
  return publicToKeyObject(pub).export({ format: 'pem', type: 'spki' }).toString();
}

/**
 * JWK of a TPM public area (`kty`/`n`/`e` or `kty`/`crv`/`x`/`y`, no other members).
 * @param pub - parsed public or TPM2B_PUBLIC bytes
 * @returns the JWK
 * @public
 */
export function publicToJwk(pub: TpmPublic | Uint8Array): JsonWebKey {
  return publicToKeyObject(pub).export({ format: 'jwk' });
}

/**
 * keyid of SPEC §3: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
 *
 * @remarks
 * DER input is parsed and re-encoded first, so every encoding of the same key (e.g. a compressed EC point)
 * yields the same keyid as the `KeyObject`. Private keys are reduced to their public half.
 * @param spki - SPKI DER bytes or a public/private `KeyObject`
 * @returns 64 lowercase hex characters
 * @throws {@link TpmWireError} `invalid_key` if the input is not a public key
 * @public
 */
export function keyIdFromSpki(spki: Uint8Array | KeyObject): string {
  let key: KeyObject;
  try {
    if (spki instanceof Uint8Array) {
      key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    } else if (spki.type === 'secret') {
      throw new TpmWireError('invalid_key', 'keyIdFromSpki: a secret key has no SPKI');
    } else {
      key = spki.type === 'private' ? createPublicKey(spki) : spki;
    }
  } catch (cause) {
    if (cause instanceof TpmWireError) throw cause;
    throw new TpmWireError('invalid_key', 'keyIdFromSpki: not a DER SubjectPublicKeyInfo', { cause });
  }
  const der = key.export({ format: 'der', type: 'spki' });
  return createHash('sha256').update(der).digest('hex');
}

/**
 * keyid (SPEC §3) of a TPM public area: `keyIdFromSpki(publicToSpkiDer(pub))`.
 * @param pub - parsed public or TPM2B_PUBLIC bytes
 * @returns 64 lowercase hex characters
 * @public
 */
export function keyIdOfPublic(pub: TpmPublic | Uint8Array): string {
  const entry = cachedKey(pub);
  entry.keyId ??= keyIdFromSpki(entry.key);
  return entry.keyId;
}

/**
 * The object's Name (TPM 2.0 Part 1 §16): `nameAlg` (2 bytes) ‖ H_nameAlg(TPMT_PUBLIC).
 * The TPMT_PUBLIC is re-marshalled from the fields, which for parsed input equals the original bytes.
 * @param pub - parsed public or TPM2B_PUBLIC bytes
 * @returns the Name (34 bytes for SHA-256)
 * @public
 */
export function objectName(pub: TpmPublic | Uint8Array): Uint8Array {
  const p = asPublic(pub);
  const digest = createHash(p.nameAlg).update(marshalTpmtPublic(p)).digest();
  return concat(new Writer().u16(hashAlgId(p.nameAlg)).finish(), new Uint8Array(digest));
}

/**
 * Hex form of {@link objectName}, as printed by tpm2-tools (`name: 000b…`).
 * @param pub - parsed public or TPM2B_PUBLIC bytes
 * @returns lowercase hex
 * @public
 */
export function objectNameHex(pub: TpmPublic | Uint8Array): string {
  return toHex(objectName(pub));
}

/**
 * Runs a node:crypto operation on a key that came from the wire; OpenSSL errors (e.g. a degenerate RSA
 * modulus that survived import) become `invalid_key`.
 * @internal
 */
export function withKey<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (cause) {
    if (cause instanceof TpmWireError) throw cause;
    throw new TpmWireError('invalid_key', `${what}: the public key is not usable`, { cause });
  }
}
