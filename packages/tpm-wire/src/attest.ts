import { Reader, Writer } from './buffer.js';
import { MAX_DIGEST, MAX_TPMT_HA, TPM_ST } from './constants.js';
import { TpmWireError } from './errors.js';
import { type PcrSelection, readPcrSelection, writePcrSelection } from './pcr.js';

/**
 * TPMS_CLOCK_INFO.
 * @public
 */
export interface ClockInfo {
  /** Milliseconds the TPM has been powered since its last TPM2_Clear. */
  clock: bigint;
  /** TPM Reset count. */
  resetCount: number;
  /** TPM Restart/Resume count since the last Reset. */
  restartCount: number;
  /** Whether `clock` is guaranteed not to have been rolled back. */
  safe: boolean;
}

/**
 * A parsed TPMS_ATTEST. `certify` is set for TPM_ST_ATTEST_CERTIFY, `quote` for TPM_ST_ATTEST_QUOTE; every
 * other type is reported as `'other'` with its undecoded `attested` body.
 * @public
 */
export interface TpmsAttest {
  /** Must be TPM_GENERATED_VALUE (0xff544347) for TPM-generated data; checked by the verifiers, not the parser. */
  magic: number;
  /** Decoded attestation type. */
  type: 'certify' | 'quote' | 'other';
  /** Raw TPM_ST value of the type. */
  typeId: number;
  /** Qualified Name of the signing key. */
  qualifiedSigner: Uint8Array;
  /** The caller's qualifyingData (nonce). */
  extraData: Uint8Array;
  /** Clock information. */
  clockInfo: ClockInfo;
  /** Vendor firmware version. */
  firmwareVersion: bigint;
  /** TPMS_CERTIFY_INFO when `type === 'certify'`. */
  certify?: { name: Uint8Array; qualifiedName: Uint8Array };
  /** TPMS_QUOTE_INFO when `type === 'quote'`. */
  quote?: { pcrSelect: PcrSelection; pcrDigest: Uint8Array };
  /** Undecoded TPMU_ATTEST body when `type === 'other'`. */
  attested?: Uint8Array;
}

/**
 * Parses a TPMS_ATTEST (as signed by the TPM; no TPM2B_ATTEST size prefix). Rejects truncated input and
 * trailing bytes after certify/quote bodies. Does not check the magic or signature: use
 * {@link verifyCertify} / {@link verifyQuote}.
 * @param bytes - TPMS_ATTEST bytes
 * @returns the parsed structure
 * @throws {@link TpmWireError} on malformed input
 * @public
 */
export function parseAttest(bytes: Uint8Array): TpmsAttest {
  const r = new Reader(bytes, 'TPMS_ATTEST');
  const magic = r.u32('magic');
  const typeId = r.u16('type');
  const qualifiedSigner = r.tpm2b('qualifiedSigner', MAX_TPMT_HA);
  const extraData = r.tpm2b('extraData', MAX_TPMT_HA);
  const clock = r.u64('clockInfo.clock');
  const resetCount = r.u32('clockInfo.resetCount');
  const restartCount = r.u32('clockInfo.restartCount');
  const safeByte = r.u8('clockInfo.safe');
  if (safeByte > 1) throw new TpmWireError('malformed', `TPMS_ATTEST: clockInfo.safe is ${safeByte}`);
  const firmwareVersion = r.u64('firmwareVersion');
  const base = {
    magic,
    typeId,
    qualifiedSigner,
    extraData,
    clockInfo: { clock, resetCount, restartCount, safe: safeByte === 1 },
    firmwareVersion,
  };
  if (typeId === TPM_ST.ATTEST_CERTIFY) {
    const name = r.tpm2b('certify.name', MAX_TPMT_HA);
    const qualifiedName = r.tpm2b('certify.qualifiedName', MAX_TPMT_HA);
    r.end();
    return { ...base, type: 'certify', certify: { name, qualifiedName } };
  }
  if (typeId === TPM_ST.ATTEST_QUOTE) {
    const pcrSelect = readPcrSelection(r);
    const digest = r.tpm2b('quote.pcrDigest', MAX_DIGEST);
    r.end();
    return { ...base, type: 'quote', quote: { pcrSelect, pcrDigest: digest } };
  }
  return { ...base, type: 'other', attested: r.rest() };
}

/**
 * Marshals a TPMS_ATTEST (inverse of {@link parseAttest}). Mostly useful for tests and tooling: a verifier
 * must always check the signature over the bytes it received, never over re-marshalled ones.
 * @param a - the structure
 * @returns TPMS_ATTEST bytes
 * @public
 */
export function marshalAttest(a: TpmsAttest): Uint8Array {
  const w = new Writer().u32(a.magic >>> 0).u16(a.typeId);
  w.tpm2b(a.qualifiedSigner, MAX_TPMT_HA, 'qualifiedSigner').tpm2b(a.extraData, MAX_TPMT_HA, 'extraData');
  w.u64(a.clockInfo.clock).u32(a.clockInfo.resetCount).u32(a.clockInfo.restartCount);
  w.u8(a.clockInfo.safe ? 1 : 0).u64(a.firmwareVersion);
  if (a.type === 'certify') {
    if (!a.certify || a.typeId !== TPM_ST.ATTEST_CERTIFY)
      throw new TpmWireError('invalid_argument', 'bad certify');
    w.tpm2b(a.certify.name, MAX_TPMT_HA, 'name').tpm2b(a.certify.qualifiedName, MAX_TPMT_HA, 'qualifiedName');
  } else if (a.type === 'quote') {
    if (!a.quote || a.typeId !== TPM_ST.ATTEST_QUOTE) throw new TpmWireError('invalid_argument', 'bad quote');
    writePcrSelection(w, a.quote.pcrSelect);
    w.tpm2b(a.quote.pcrDigest, MAX_DIGEST, 'pcrDigest');
  } else {
    w.bytes(a.attested ?? new Uint8Array(0));
  }
  return w.finish();
}
