import { decodeObjectAttributes, type ObjectAttributes } from './attributes.js';
import { Reader, Writer } from './buffer.js';
import {
  type HashAlg,
  hashAlgId,
  hashFromId,
  MAX_DIGEST,
  MAX_ECC_BYTES,
  MAX_RSA_BYTES,
  makeTable,
  TPM_ALG,
} from './constants.js';
import { TpmWireError } from './errors.js';

/** Block cipher of a TPMT_SYM_DEF_OBJECT. @public */
export type SymAlgorithm = 'aes' | 'sm4' | 'camellia' | 'tdes';
/** Block cipher mode of a TPMT_SYM_DEF_OBJECT. @public */
export type SymMode = 'ctr' | 'ofb' | 'cbc' | 'cfb' | 'ecb';

/**
 * TPMT_SYM_DEF_OBJECT with a non-NULL algorithm (storage keys and EKs: AES-128-CFB).
 * @public
 */
export interface SymDefObject {
  /** Cipher. */
  algorithm: SymAlgorithm;
  /** Key size in bits. */
  keyBits: number;
  /** Mode. */
  mode: SymMode;
}

/** RSA signing/encryption schemes. @public */
export type RsaSchemeName = 'rsassa' | 'rsapss' | 'rsaes' | 'oaep';
/** ECC signing/key-exchange schemes. @public */
export type EccSchemeName = 'ecdsa' | 'ecdh' | 'ecdaa' | 'sm2' | 'ecschnorr' | 'ecmqv';

/**
 * A non-NULL TPMT_RSA_SCHEME / TPMT_ECC_SCHEME.
 * @public
 */
export interface AsymScheme {
  /** Scheme name. */
  scheme: RsaSchemeName | EccSchemeName;
  /** Hash of the scheme (absent only for `rsaes`). */
  hashAlg?: HashAlg;
  /** ECDAA commit count (only for `ecdaa`). */
  count?: number;
}

/** Key derivation function of a TPMT_KDF_SCHEME. @public */
export type KdfName = 'mgf1' | 'kdf1_sp800_56a' | 'kdf2' | 'kdf1_sp800_108';

/**
 * A non-NULL TPMT_KDF_SCHEME.
 * @public
 */
export interface KdfScheme {
  /** KDF. */
  scheme: KdfName;
  /** Hash used by the KDF. */
  hashAlg: HashAlg;
}

/** TPM_ECC_CURVE names. @public */
export type EccCurve = 'p192' | 'p224' | 'p256' | 'p384' | 'p521' | 'bn_p256' | 'bn_p638' | 'sm2_p256';

/**
 * RSA part of a public area: TPMS_RSA_PARMS plus the modulus (TPM2B_PUBLIC_KEY_RSA).
 * @public
 */
export interface RsaPublicParams {
  /** Symmetric algorithm for storage keys / EKs; null for signing keys. */
  symmetric: SymDefObject | null;
  /** Signing/encryption scheme; null = TPM_ALG_NULL (any scheme chosen at use time). */
  scheme: AsymScheme | null;
  /** Key size in bits. */
  keyBits: number;
  /** Public exponent as stored; 0 means the default 65537. */
  exponent: number;
  /** Modulus, big-endian (empty in templates). */
  modulus: Uint8Array;
}

/**
 * ECC part of a public area: TPMS_ECC_PARMS plus the point (TPMS_ECC_POINT).
 * @public
 */
export interface EccPublicParams {
  /** Symmetric algorithm for storage keys / EKs; null for signing keys. */
  symmetric: SymDefObject | null;
  /** Signing/key-exchange scheme; null = TPM_ALG_NULL. */
  scheme: AsymScheme | null;
  /** Curve. */
  curve: EccCurve;
  /** KDF scheme; null = TPM_ALG_NULL (the usual case). */
  kdf: KdfScheme | null;
  /** X coordinate, big-endian. */
  x: Uint8Array;
  /** Y coordinate, big-endian. */
  y: Uint8Array;
}

/**
 * A parsed TPMT_PUBLIC (RSA or ECC).
 * @public
 */
export interface TpmPublic {
  /** Key type. */
  type: 'rsa' | 'ecc';
  /** Hash used to compute the object's Name. */
  nameAlg: HashAlg;
  /** Decoded TPMA_OBJECT bits. */
  attributes: ObjectAttributes;
  /** Raw TPMA_OBJECT (includes reserved bits, if any). */
  objectAttributes: number;
  /** Policy digest required for ADMIN/USER (policy) use; empty when none. */
  authPolicy: Uint8Array;
  /** Present when `type === 'rsa'`. */
  rsa?: RsaPublicParams;
  /** Present when `type === 'ecc'`. */
  ecc?: EccPublicParams;
  /** The raw TPMT_PUBLIC bytes (no TPM2B size prefix) this value was parsed from, or marshalled to. */
  tpmt: Uint8Array;
}

const SYM = makeTable<SymAlgorithm>([
  ['aes', TPM_ALG.AES],
  ['sm4', TPM_ALG.SM4],
  ['camellia', TPM_ALG.CAMELLIA],
  ['tdes', TPM_ALG.TDES],
]);
const MODE = makeTable<SymMode>([
  ['ctr', TPM_ALG.CTR],
  ['ofb', TPM_ALG.OFB],
  ['cbc', TPM_ALG.CBC],
  ['cfb', TPM_ALG.CFB],
  ['ecb', TPM_ALG.ECB],
]);
const RSA_SCHEME = makeTable<RsaSchemeName>([
  ['rsassa', TPM_ALG.RSASSA],
  ['rsapss', TPM_ALG.RSAPSS],
  ['rsaes', TPM_ALG.RSAES],
  ['oaep', TPM_ALG.OAEP],
]);
const ECC_SCHEME = makeTable<EccSchemeName>([
  ['ecdsa', TPM_ALG.ECDSA],
  ['ecdh', TPM_ALG.ECDH],
  ['ecdaa', TPM_ALG.ECDAA],
  ['sm2', TPM_ALG.SM2],
  ['ecschnorr', TPM_ALG.ECSCHNORR],
  ['ecmqv', TPM_ALG.ECMQV],
]);
const KDF = makeTable<KdfName>([
  ['mgf1', TPM_ALG.MGF1],
  ['kdf1_sp800_56a', TPM_ALG.KDF1_SP800_56A],
  ['kdf2', TPM_ALG.KDF2],
  ['kdf1_sp800_108', TPM_ALG.KDF1_SP800_108],
]);
/** @internal */
export const CURVE = makeTable<EccCurve>([
  ['p192', 0x0001],
  ['p224', 0x0002],
  ['p256', 0x0003],
  ['p384', 0x0004],
  ['p521', 0x0005],
  ['bn_p256', 0x0010],
  ['bn_p638', 0x0011],
  ['sm2_p256', 0x0020],
]);

function readSymDefObject(r: Reader): SymDefObject | null {
  const alg = r.u16('symmetric.algorithm');
  if (alg === TPM_ALG.NULL) return null;
  const algorithm = SYM.name(alg, 'symmetric.algorithm');
  const keyBits = r.u16('symmetric.keyBits');
  const mode = MODE.name(r.u16('symmetric.mode'), 'symmetric.mode');
  return { algorithm, keyBits, mode };
}

function writeSymDefObject(w: Writer, s: SymDefObject | null): void {
  if (s === null) {
    w.u16(TPM_ALG.NULL);
    return;
  }
  w.u16(SYM.id(s.algorithm, 'symmetric.algorithm'));
  w.u16(s.keyBits);
  w.u16(MODE.id(s.mode, 'symmetric.mode'));
}

function readScheme(r: Reader, type: 'rsa' | 'ecc'): AsymScheme | null {
  const id = r.u16('scheme.scheme');
  if (id === TPM_ALG.NULL) return null;
  if (type === 'rsa') {
    const scheme = RSA_SCHEME.name(id, 'rsa scheme');
    // TPMS_ENC_SCHEME_RSAES is TPMS_EMPTY: no hash follows.
    if (scheme === 'rsaes') return { scheme };
    return { scheme, hashAlg: hashFromId(r.u16('scheme.hashAlg'), 'scheme.hashAlg') };
  }
  const scheme = ECC_SCHEME.name(id, 'ecc scheme');
  const hashAlg = hashFromId(r.u16('scheme.hashAlg'), 'scheme.hashAlg');
  if (scheme === 'ecdaa') return { scheme, hashAlg, count: r.u16('scheme.count') };
  return { scheme, hashAlg };
}

function writeScheme(w: Writer, s: AsymScheme | null, type: 'rsa' | 'ecc'): void {
  if (s === null) {
    w.u16(TPM_ALG.NULL);
    return;
  }
  const id =
    type === 'rsa'
      ? RSA_SCHEME.id(s.scheme as RsaSchemeName, 'rsa scheme')
      : ECC_SCHEME.id(s.scheme as EccSchemeName, 'ecc scheme');
  w.u16(id);
  if (s.scheme === 'rsaes') return;
  if (!s.hashAlg) throw new TpmWireError('invalid_argument', `scheme ${s.scheme} needs hashAlg`);
  w.u16(hashAlgId(s.hashAlg));
  if (s.scheme === 'ecdaa') w.u16(s.count ?? 0);
}

function readKdf(r: Reader): KdfScheme | null {
  const id = r.u16('kdf.scheme');
  if (id === TPM_ALG.NULL) return null;
  const scheme = KDF.name(id, 'kdf.scheme');
  return { scheme, hashAlg: hashFromId(r.u16('kdf.hashAlg'), 'kdf.hashAlg') };
}

/** Parses a TPMT_PUBLIC from a reader positioned at its start. @internal */
export function readTpmtPublic(r: Reader): TpmPublic {
  const start = r.offset;
  const typeId = r.u16('type');
  let type: 'rsa' | 'ecc';
  if (typeId === TPM_ALG.RSA) type = 'rsa';
  else if (typeId === TPM_ALG.ECC) type = 'ecc';
  else {
    throw new TpmWireError(
      'unsupported_algorithm',
      `TPMT_PUBLIC: type 0x${typeId.toString(16).padStart(4, '0')} not supported (only RSA and ECC)`,
    );
  }
  const nameAlg = hashFromId(r.u16('nameAlg'), 'nameAlg');
  const objectAttributes = r.u32('objectAttributes');
  const authPolicy = r.tpm2b('authPolicy', MAX_DIGEST);
  const symmetric = readSymDefObject(r);
  const scheme = readScheme(r, type);
  const base = {
    type,
    nameAlg,
    attributes: decodeObjectAttributes(objectAttributes),
    objectAttributes,
    authPolicy,
  };
  if (type === 'rsa') {
    const keyBits = r.u16('rsa.keyBits');
    const exponent = r.u32('rsa.exponent');
    const modulus = r.tpm2b('unique.rsa', MAX_RSA_BYTES);
    return {
      ...base,
      rsa: { symmetric, scheme, keyBits, exponent, modulus },
      tpmt: r.bytes.slice(start, r.offset),
    };
  }
  const curve = CURVE.name(r.u16('ecc.curveID'), 'ecc.curveID');
  const kdf = readKdf(r);
  const x = r.tpm2b('unique.ecc.x', MAX_ECC_BYTES);
  const y = r.tpm2b('unique.ecc.y', MAX_ECC_BYTES);
  return {
    ...base,
    ecc: { symmetric, scheme, curve, kdf, x, y },
    tpmt: r.bytes.slice(start, r.offset),
  };
}

/**
 * Parses a TPMT_PUBLIC (no size prefix), rejecting truncated input and trailing bytes.
 * @param tpmt - raw TPMT_PUBLIC bytes
 * @returns the parsed public area
 * @throws {@link TpmWireError} on malformed input
 * @public
 */
export function parseTpmtPublic(tpmt: Uint8Array): TpmPublic {
  const r = new Reader(tpmt, 'TPMT_PUBLIC');
  const pub = readTpmtPublic(r);
  r.end();
  return pub;
}

/**
 * Parses a TPM2B_PUBLIC (2-byte size, then exactly that many bytes of TPMT_PUBLIC). The size must match
 * the structure exactly and no bytes may follow it.
 * @param tpm2bPublic - TPM2B_PUBLIC bytes as returned by TPM2_ReadPublic / TPM2_Create
 * @returns the parsed public area
 * @throws {@link TpmWireError} on malformed input
 * @public
 */
export function parsePublic(tpm2bPublic: Uint8Array): TpmPublic {
  const outer = new Reader(tpm2bPublic, 'TPM2B_PUBLIC');
  const size = outer.u16('size');
  if (size === 0) throw new TpmWireError('malformed', 'TPM2B_PUBLIC: empty public area');
  const body = outer.bytesN(size, 'publicArea');
  outer.end();
  return parseTpmtPublic(body);
}

/** Writes the TPMT_PUBLIC of `pub` from its fields. @internal */
export function writeTpmtPublic(w: Writer, pub: TpmPublic): void {
  if (pub.type === 'rsa') {
    const p = pub.rsa;
    if (!p) throw new TpmWireError('invalid_argument', 'RSA public without rsa parameters');
    w.u16(TPM_ALG.RSA)
      .u16(hashAlgId(pub.nameAlg))
      .u32(pub.objectAttributes >>> 0);
    w.tpm2b(pub.authPolicy, MAX_DIGEST, 'authPolicy');
    writeSymDefObject(w, p.symmetric);
    writeScheme(w, p.scheme, 'rsa');
    w.u16(p.keyBits).u32(p.exponent >>> 0);
    w.tpm2b(p.modulus, MAX_RSA_BYTES, 'unique.rsa');
    return;
  }
  if (pub.type === 'ecc') {
    const p = pub.ecc;
    if (!p) throw new TpmWireError('invalid_argument', 'ECC public without ecc parameters');
    w.u16(TPM_ALG.ECC)
      .u16(hashAlgId(pub.nameAlg))
      .u32(pub.objectAttributes >>> 0);
    w.tpm2b(pub.authPolicy, MAX_DIGEST, 'authPolicy');
    writeSymDefObject(w, p.symmetric);
    writeScheme(w, p.scheme, 'ecc');
    w.u16(CURVE.id(p.curve, 'ecc.curveID'));
    if (p.kdf === null) w.u16(TPM_ALG.NULL);
    else w.u16(KDF.id(p.kdf.scheme, 'kdf.scheme')).u16(hashAlgId(p.kdf.hashAlg));
    w.tpm2b(p.x, MAX_ECC_BYTES, 'unique.ecc.x');
    w.tpm2b(p.y, MAX_ECC_BYTES, 'unique.ecc.y');
    return;
  }
  throw new TpmWireError('unsupported_algorithm', `unsupported public type ${String(pub.type)}`);
}

/**
 * Marshals the TPMT_PUBLIC of `pub` from its fields (the `tpmt` field is ignored, so edited values are
 * encoded as edited). For a parsed value this reproduces the input bytes exactly.
 * @param pub - public area
 * @returns TPMT_PUBLIC bytes (no size prefix)
 * @public
 */
export function marshalTpmtPublic(pub: TpmPublic): Uint8Array {
  const w = new Writer();
  writeTpmtPublic(w, pub);
  return w.finish();
}

/**
 * Marshals `pub` as a TPM2B_PUBLIC (2-byte size prefix + TPMT_PUBLIC).
 * @param pub - public area
 * @returns TPM2B_PUBLIC bytes
 * @public
 */
export function marshalPublic(pub: TpmPublic): Uint8Array {
  const body = marshalTpmtPublic(pub);
  return new Writer().tpm2b(body, 0xffff, 'TPM2B_PUBLIC').finish();
}

/** Accepts either a parsed public or TPM2B_PUBLIC bytes. @internal */
export function asPublic(pub: TpmPublic | Uint8Array): TpmPublic {
  return pub instanceof Uint8Array ? parsePublic(pub) : pub;
}
