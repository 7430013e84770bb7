import { constants, verify as cryptoVerify } from 'node:crypto';
import { Reader, Writer } from './buffer.js';
import { type HashAlg, hashAlgId, hashFromId, MAX_ECC_BYTES, MAX_RSA_BYTES, TPM_ALG } from './constants.js';
import { TpmWireError } from './errors.js';
import { curveSize, publicToKeyObject, withKey } from './keys.js';
import { asPublic, type TpmPublic } from './public.js';

/**
 * A parsed TPMT_SIGNATURE (RSASSA, RSAPSS or ECDSA).
 * @public
 */
export interface TpmtSignature {
  /** Signature scheme. */
  alg: 'rsassa' | 'rsapss' | 'ecdsa';
  /** Hash the TPM signed with. */
  hashAlg: HashAlg;
  /**
   * RSA: the signature bytes. ECDSA: raw r‖s, each left-padded to the smallest supported field size
   * (32, 48 or 66 bytes) that holds both — the 64-byte form for P-256 keys.
   */
  signature: Uint8Array;
  /** ECDSA r, as carried in the structure. */
  r?: Uint8Array;
  /** ECDSA s, as carried in the structure. */
  s?: Uint8Array;
}

function pad(b: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

/**
 * Parses a TPMT_SIGNATURE, rejecting truncated input and trailing bytes.
 * @param bytes - TPMT_SIGNATURE bytes
 * @returns the parsed signature
 * @throws {@link TpmWireError} `unsupported_algorithm` for schemes other than RSASSA/RSAPSS/ECDSA
 * @public
 */
export function parseSignature(bytes: Uint8Array): TpmtSignature {
  const r = new Reader(bytes, 'TPMT_SIGNATURE');
  const algId = r.u16('sigAlg');
  let out: TpmtSignature;
  if (algId === TPM_ALG.RSASSA || algId === TPM_ALG.RSAPSS) {
    const hashAlg = hashFromId(r.u16('hash'), 'signature.hash');
    const signature = r.tpm2b('sig', MAX_RSA_BYTES);
    out = { alg: algId === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss', hashAlg, signature };
  } else if (algId === TPM_ALG.ECDSA) {
    const hashAlg = hashFromId(r.u16('hash'), 'signature.hash');
    const sr = r.tpm2b('signatureR', MAX_ECC_BYTES);
    const ss = r.tpm2b('signatureS', MAX_ECC_BYTES);
    const longest = Math.max(sr.length, ss.length);
    const field = [32, 48, 66].find((n) => n >= longest);
    if (field === undefined) throw new TpmWireError('oversized', `ECDSA r/s of ${longest} bytes`);
    out = {
      alg: 'ecdsa',
      hashAlg,
      signature: new Uint8Array([...pad(sr, field), ...pad(ss, field)]),
      r: sr,
      s: ss,
    };
  } else {
    throw new TpmWireError(
      'unsupported_algorithm',
      `TPMT_SIGNATURE: sigAlg 0x${algId.toString(16).padStart(4, '0')} not supported`,
    );
  }
  r.end();
  return out;
}

/**
 * Marshals a TPMT_SIGNATURE. For ECDSA, `r`/`s` are used when present, else `signature` is split in halves.
 * @param sig - the signature
 * @returns TPMT_SIGNATURE bytes
 * @public
 */
export function marshalSignature(sig: TpmtSignature): Uint8Array {
  const w = new Writer();
  if (sig.alg === 'rsassa' || sig.alg === 'rsapss') {
    w.u16(sig.alg === 'rsassa' ? TPM_ALG.RSASSA : TPM_ALG.RSAPSS).u16(hashAlgId(sig.hashAlg));
    return w.tpm2b(sig.signature, MAX_RSA_BYTES, 'sig').finish();
  }
  if (sig.alg === 'ecdsa') {
    const half = sig.signature.length / 2;
    const r = sig.r ?? sig.signature.subarray(0, half);
    const s = sig.s ?? sig.signature.subarray(half);
    w.u16(TPM_ALG.ECDSA).u16(hashAlgId(sig.hashAlg));
    return w.tpm2b(r, MAX_ECC_BYTES, 'signatureR').tpm2b(s, MAX_ECC_BYTES, 'signatureS').finish();
  }
  throw new TpmWireError('unsupported_algorithm', `unsupported signature alg ${String(sig.alg)}`);
}

/**
 * Verifies a TPM signature over `message` with `node:crypto`.
 *
 * @remarks
 * Returns false (never throws) when the signature does not verify, when its scheme does not fit the key type,
 * when the signer's public area fixes a scheme/hash that differs from the signature's, or when the hash is
 * SHA-1 (refused as too weak). RSASSA uses PKCS#1 v1.5; RSAPSS accepts any salt length (TPMs use either
 * the maximum or the digest length). ECDSA r and s must each fit the key's field size.
 *
 * @param message - the signed bytes (e.g. TPMS_ATTEST); hashed here with the signature's hash
 * @param signature - TPMT_SIGNATURE bytes or a parsed signature
 * @param signerPublic - the signer's public area (parsed or TPM2B_PUBLIC bytes)
 * @returns whether the signature is valid
 * @throws {@link TpmWireError} when the signature bytes or the public area are malformed
 * @public
 */
export function verifyTpmSignature(
  message: Uint8Array,
  signature: Uint8Array | TpmtSignature,
  signerPublic: TpmPublic | Uint8Array,
): boolean {
  const sig = signature instanceof Uint8Array ? parseSignature(signature) : signature;
  const pub = asPublic(signerPublic);
  const key = publicToKeyObject(pub);
  if (sig.hashAlg === 'sha1') return false;
  const fixed = pub.type === 'rsa' ? pub.rsa?.scheme : pub.ecc?.scheme;
  if (fixed && (fixed.scheme !== sig.alg || fixed.hashAlg !== sig.hashAlg)) return false;
  if (pub.type === 'rsa') {
    if (sig.alg !== 'rsassa' && sig.alg !== 'rsapss') return false;
    if (sig.signature.length !== pub.rsa?.modulus.length) return false;
    const padding = sig.alg === 'rsassa' ? constants.RSA_PKCS1_PADDING : constants.RSA_PKCS1_PSS_PADDING;
    return withKey('verifyTpmSignature', () =>
      cryptoVerify(
        sig.hashAlg,
        message,
        { key, padding, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
        sig.signature,
      ),
    );
  }
  if (sig.alg !== 'ecdsa' || !pub.ecc) return false;
  const size = curveSize(pub.ecc.curve);
  const half = sig.signature.length / 2;
  const r = sig.r ?? sig.signature.subarray(0, half);
  const s = sig.s ?? sig.signature.subarray(half);
  if (r.length > size || s.length > size) return false;
  const raw = new Uint8Array([...pad(r, size), ...pad(s, size)]);
  return withKey('verifyTpmSignature', () =>
    cryptoVerify(sig.hashAlg, message, { key, dsaEncoding: 'ieee-p1363' }, raw),
  );
}
