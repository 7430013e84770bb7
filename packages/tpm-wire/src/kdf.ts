import { createHash, createHmac } from 'node:crypto';
import { Writer } from './buffer.js';
import { type HashAlg, hashSize } from './constants.js';
import { TpmWireError } from './errors.js';

/** Label bytes as the TPM hashes them: the ASCII label followed by one zero byte. */
function labelBytes(label: string): Uint8Array {
  const ascii = Buffer.from(label, 'latin1');
  return ascii.length > 0 && ascii[ascii.length - 1] === 0
    ? new Uint8Array(ascii)
    : new Uint8Array([...ascii, 0]);
}

function outputBytes(bits: number, hashAlg: HashAlg): number {
  hashSize(hashAlg); // rejects unknown hash names with a TpmWireError
  if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0 || bits > 0xffff) {
    throw new TpmWireError(
      'invalid_argument',
      `KDF output length ${bits} bits is not a positive multiple of 8`,
    );
  }
  return bits / 8;
}

function u32(n: number): Uint8Array {
  return new Writer().u32(n).finish();
}

/**
 * KDFa (TPM 2.0 Part 1 §11.4.10.2): SP 800-108 counter-mode KDF with HMAC.
 * `K(i) = HMAC(key, [i]₃₂ ‖ label ‖ 0x00 ‖ contextU ‖ contextV ‖ [bits]₃₂)`.
 * @param hashAlg - HMAC hash
 * @param key - HMAC key (e.g. the credential seed)
 * @param label - ASCII label without terminator (e.g. `'STORAGE'`); one zero byte is appended
 * @param contextU - first context value (e.g. the object Name)
 * @param contextV - second context value
 * @param bits - output length in bits (a multiple of 8)
 * @returns `bits / 8` bytes
 * @public
 */
export function kdfa(
  hashAlg: HashAlg,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  const bytes = outputBytes(bits, hashAlg);
  const parts: Buffer[] = [];
  let have = 0;
  for (let i = 1; have < bytes; i++) {
    const block = createHmac(hashAlg, key)
      .update(u32(i))
      .update(labelBytes(label))
      .update(contextU)
      .update(contextV)
      .update(u32(bits))
      .digest();
    parts.push(block);
    have += block.length;
  }
  return new Uint8Array(Buffer.concat(parts).subarray(0, bytes));
}

/**
 * KDFe (TPM 2.0 Part 1 §11.4.10.3): SP 800-56A concatenation KDF.
 * `K(i) = H([i]₃₂ ‖ Z ‖ label ‖ 0x00 ‖ partyUInfo ‖ partyVInfo)`.
 * @param hashAlg - hash
 * @param z - shared secret (the x coordinate of the ECDH point)
 * @param label - ASCII label without terminator (e.g. `'IDENTITY'`); one zero byte is appended
 * @param partyUInfo - x coordinate of the ephemeral public key
 * @param partyVInfo - x coordinate of the static (EK) public key
 * @param bits - output length in bits (a multiple of 8)
 * @returns `bits / 8` bytes
 * @public
 */
export function kdfe(
  hashAlg: HashAlg,
  z: Uint8Array,
  label: string,
  partyUInfo: Uint8Array,
  partyVInfo: Uint8Array,
  bits: number,
): Uint8Array {
  const bytes = outputBytes(bits, hashAlg);
  const parts: Buffer[] = [];
  let have = 0;
  for (let i = 1; have < bytes; i++) {
    const block = createHash(hashAlg)
      .update(u32(i))
      .update(z)
      .update(labelBytes(label))
      .update(partyUInfo)
      .update(partyVInfo)
      .digest();
    parts.push(block);
    have += block.length;
  }
  return new Uint8Array(Buffer.concat(parts).subarray(0, bytes));
}
