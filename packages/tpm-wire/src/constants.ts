import { TpmWireError } from './errors.js';

/**
 * Hash algorithms supported for Names, PCR banks and signatures.
 * @public
 */
export type HashAlg = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** TPM_ALG_ID values used by this package (TPM 2.0 Part 2 §6.3). @internal */
export const TPM_ALG = {
  RSA: 0x0001,
  TDES: 0x0003,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

/** TPM_ST values for attestation structures (Part 2 §6.9). @internal */
export const TPM_ST = {
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  ATTEST_NV_DIGEST: 0x801c,
} as const;

/** TPM_GENERATED_VALUE: the magic every TPM-generated TPMS_ATTEST starts with ("\xffTCG"). @public */
export const TPM_GENERATED_VALUE = 0xff544347;

/** Largest digest any supported hash produces (sizeof(TPMU_HA)); bounds TPM2B_DIGEST. @internal */
export const MAX_DIGEST = 64;
/** sizeof(TPMT_HA): bounds TPM2B_DATA and TPM2B_NAME. @internal */
export const MAX_TPMT_HA = 66;
/** MAX_RSA_KEY_BYTES for 4096-bit keys; bounds TPM2B_PUBLIC_KEY_RSA. @internal */
export const MAX_RSA_BYTES = 512;
/** MAX_ECC_KEY_BYTES (BN P638 is the largest TCG curve at 80 bytes). @internal */
export const MAX_ECC_BYTES = 80;

const HASH_BY_ID = new Map<number, HashAlg>([
  [TPM_ALG.SHA1, 'sha1'],
  [TPM_ALG.SHA256, 'sha256'],
  [TPM_ALG.SHA384, 'sha384'],
  [TPM_ALG.SHA512, 'sha512'],
]);

const HASH_SIZE: Record<HashAlg, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };
const HASH_ID: Record<HashAlg, number> = {
  sha1: TPM_ALG.SHA1,
  sha256: TPM_ALG.SHA256,
  sha384: TPM_ALG.SHA384,
  sha512: TPM_ALG.SHA512,
};

/** Maps a TPM_ALG_ID to a hash name or throws. @internal */
export function hashFromId(id: number, field: string): HashAlg {
  const h = HASH_BY_ID.get(id);
  if (!h) {
    throw new TpmWireError(
      'unsupported_algorithm',
      `${field}: hash algorithm 0x${id.toString(16).padStart(4, '0')} not supported`,
    );
  }
  return h;
}

/**
 * TPM_ALG_ID of a hash algorithm.
 * @param alg - hash name
 * @returns the 16-bit algorithm id (e.g. 0x000b for sha256)
 * @public
 */
export function hashAlgId(alg: HashAlg): number {
  const id = HASH_ID[alg];
  if (id === undefined) throw new TpmWireError('unsupported_algorithm', `unknown hash ${String(alg)}`);
  return id;
}

/**
 * Digest size in bytes of a hash algorithm.
 * @param alg - hash name
 * @returns 20, 32, 48 or 64
 * @public
 */
export function hashSize(alg: HashAlg): number {
  const n = HASH_SIZE[alg];
  if (n === undefined) throw new TpmWireError('unsupported_algorithm', `unknown hash ${String(alg)}`);
  return n;
}

/** Reverse lookup helper for small string↔id tables. @internal */
export function makeTable<T extends string>(entries: ReadonlyArray<readonly [T, number]>) {
  const byName = new Map<T, number>(entries);
  const byId = new Map<number, T>(entries.map(([n, i]) => [i, n] as const));
  return {
    id(name: T, field: string): number {
      const v = byName.get(name);
      if (v === undefined) throw new TpmWireError('unsupported_algorithm', `${field}: unknown value ${name}`);
      return v;
    },
    name(id: number, field: string): T {
      const v = byId.get(id);
      if (v === undefined) {
        throw new TpmWireError(
          'unsupported_algorithm',
          `${field}: value 0x${id.toString(16).padStart(4, '0')} not supported here`,
        );
      }
      return v;
    },
  };
}
