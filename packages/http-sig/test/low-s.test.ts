import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isLowS } from '../src/index.js';

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const HALF = N >> 1n;
/** The definition: 1 ≤ s ≤ n/2, with s read as a big-endian integer. */
const reference = (sig: Uint8Array) => {
  if (sig.length !== 64) return false;
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`);
  return s >= 1n && s <= HALF;
};
const be32 = (x: bigint) => Buffer.from(x.toString(16).padStart(64, '0'), 'hex');

describe('isLowS (byte comparison) equals the integer definition', () => {
  it('random and boundary s values', () => {
    const s = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc
        .constantFrom(0n, 1n, HALF - 1n, HALF, HALF + 1n, N - 1n, N, 2n ** 256n - 1n, 256n, 2n ** 248n)
        .map(be32),
      fc.bigInt({ min: HALF - 1000n, max: HALF + 1000n }).map(be32),
      fc.bigInt({ min: 0n, max: 1000n }).map(be32),
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), s, (r, sb) => {
        const sig = new Uint8Array(64);
        sig.set(r, 0);
        sig.set(sb, 32);
        expect(isLowS(sig)).toBe(reference(sig));
      }),
      { numRuns: 5000 },
    );
    expect(isLowS(new Uint8Array(63))).toBe(false);
  });
});
