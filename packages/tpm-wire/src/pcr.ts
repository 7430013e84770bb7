import { createHash } from 'node:crypto';
import type { Reader, Writer } from './buffer.js';
import { type HashAlg, hashAlgId, hashFromId, hashSize } from './constants.js';
import { TpmWireError } from './errors.js';

/**
 * A TPML_PCR_SELECTION: for each bank, the selected PCR indices (ascending).
 * @public
 */
export type PcrSelection = Array<{ bank: HashAlg; pcrs: number[] }>;

/**
 * PCR values by bank and index, e.g. `{ sha256: { 0: Uint8Array(32), 7: ... } }`.
 * @public
 */
export type PcrValues = { [bank: string]: { [pcr: number]: Uint8Array } };

/** HASH_COUNT upper bound: a TPM has at most a handful of banks. */
const MAX_BANKS = 16;
/** PCR_SELECT_MAX: 4 bytes cover 32 PCRs (PC Client TPMs implement 24). */
const MAX_SELECT_BYTES = 4;

/** Reads a TPML_PCR_SELECTION. @internal */
export function readPcrSelection(r: Reader): PcrSelection {
  const count = r.u32('pcrSelect.count');
  if (count > MAX_BANKS) throw new TpmWireError('oversized', `pcrSelect.count ${count} exceeds ${MAX_BANKS}`);
  const out: PcrSelection = [];
  for (let i = 0; i < count; i++) {
    const bank = hashFromId(r.u16('pcrSelect.hash'), 'pcrSelect.hash');
    const size = r.u8('pcrSelect.sizeofSelect');
    if (size > MAX_SELECT_BYTES) {
      throw new TpmWireError('oversized', `pcrSelect.sizeofSelect ${size} exceeds ${MAX_SELECT_BYTES}`);
    }
    const bits = r.bytesN(size, 'pcrSelect.pcrSelect');
    const pcrs: number[] = [];
    for (let p = 0; p < size * 8; p++) if ((((bits[p >> 3] as number) >> (p & 7)) & 1) === 1) pcrs.push(p);
    out.push({ bank, pcrs });
  }
  return out;
}

/** Writes a TPML_PCR_SELECTION with the minimal 3-byte bitmap (PC Client) or more when needed. @internal */
export function writePcrSelection(w: Writer, sel: PcrSelection): void {
  if (sel.length > MAX_BANKS) throw new TpmWireError('oversized', 'too many PCR banks');
  w.u32(sel.length);
  for (const { bank, pcrs } of sel) {
    const max = pcrs.length ? Math.max(...pcrs) : 0;
    const size = Math.max(3, (max >> 3) + 1);
    if (size > MAX_SELECT_BYTES || pcrs.some((p) => !Number.isInteger(p) || p < 0)) {
      throw new TpmWireError('invalid_argument', `invalid PCR index in ${bank} selection`);
    }
    const bits = new Uint8Array(size);
    for (const p of pcrs) bits[p >> 3] = (bits[p >> 3] as number) | (1 << (p & 7));
    w.u16(hashAlgId(bank)).u8(size).bytes(bits);
  }
}

/**
 * The digest a TPM puts into a quote: H_hashAlg of the concatenation of the selected PCR values, bank by
 * bank in selection order and ascending index within a bank (TPM 2.0 Part 3 TPM2_Quote).
 *
 * @param selection - the PCR selection (normally taken from the quote itself)
 * @param values - PCR values covering every selected PCR
 * @param hashAlg - the signing scheme's hash (the TPM uses the quote signature's hash)
 * @returns the digest
 * @throws {@link TpmWireError} `pcr_values_missing` if a selected value is absent, `malformed` if a value
 * has the wrong length for its bank
 * @public
 */
export function pcrDigest(selection: PcrSelection, values: PcrValues, hashAlg: HashAlg): Uint8Array {
  hashSize(hashAlg); // throws a TpmWireError for unknown names before node:crypto sees them
  const h = createHash(hashAlg);
  for (const { bank, pcrs } of selection) {
    const size = hashSize(bank);
    for (const p of [...pcrs].sort((a, b) => a - b)) {
      const v = values[bank]?.[p];
      if (!v) throw new TpmWireError('pcr_values_missing', `no value for ${bank} PCR ${p}`);
      if (v.length !== size) {
        throw new TpmWireError('malformed', `${bank} PCR ${p} value has ${v.length} bytes, expected ${size}`);
      }
      h.update(v);
    }
  }
  return new Uint8Array(h.digest());
}
