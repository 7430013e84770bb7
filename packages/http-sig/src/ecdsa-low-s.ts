/**
 * Low-s form of ECDSA P-256 signatures. For every valid (r, s) the pair (r, n − s) verifies too, so a
 * verifier that wants exactly one valid signature per message accepts only s ≤ n/2, and signers
 * (a TPM may return either half) normalise before sending.
 */

/** Order n of the NIST P-256 group. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_N = P256_N >> 1n;
/** n/2 as 32 big-endian bytes, for {@link isLowS}. */
const HALF_N_BYTES = Buffer.from(P256_HALF_N.toString(16).padStart(64, '0'), 'hex');

function sOf(signature: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(signature.subarray(32, 64)).toString('hex')}`);
}

/**
 * Whether a raw r‖s (IEEE P1363, 64 bytes) P-256 signature is in low-s form (1 ≤ s ≤ n/2).
 * Any other length is not.
 * @public
 */
export function isLowS(signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  // s is big-endian in bytes 32..63: compare with n/2 byte by byte (no BigInt, no hex string).
  let nonZero = false;
  for (let i = 0; i < 32; i++) {
    const b = signature[32 + i]!;
    const h = HALF_N_BYTES[i]!;
    if (b !== 0) nonZero = true;
    if (b !== h) return b < h && (nonZero || rest(signature, 33 + i));
  }
  return true; // s = n/2
}

/** Whether any byte from `from` to the end is non-zero. */
function rest(signature: Uint8Array, from: number): boolean {
  for (let i = from; i < 64; i++) if (signature[i] !== 0) return true;
  return false;
}

/**
 * The low-s form of a raw r‖s P-256 signature: (r, n − s) when s > n/2, else the signature itself.
 * Both verify for the same message and key; only the low-s one is accepted by `@geofence/verifier`.
 * @public
 */
export function toLowS(signature: Uint8Array): Uint8Array {
  if (signature.length !== 64 || isLowS(signature)) return signature;
  const s = sOf(signature);
  if (s === 0n || s >= P256_N) return signature;
  const out = new Uint8Array(64);
  out.set(signature.subarray(0, 32), 0);
  out.set(Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex'), 32);
  return out;
}
