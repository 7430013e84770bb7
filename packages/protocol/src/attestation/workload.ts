/**
 * The workload measurement both sides compute (SPEC §4): the agent extends the workload PCR with the
 * image digest, the verifier expects the value that single extend produces.
 */
import { fromHex, sha256 } from './encoding.js';

/**
 * Expected value of the workload PCR after one extend of `imageDigestHex` (lowercase hex SHA-256)
 * from the reset state: SHA-256(32 zero bytes ‖ digest). Throws `TypeError` on any other input.
 * @public
 */
export function expectedWorkloadPcr(imageDigestHex: string): Uint8Array {
  const digest = fromHex(imageDigestHex);
  if (digest?.byteLength !== 32) throw new TypeError('image digest must be lowercase hex SHA-256');
  return sha256(new Uint8Array(32), digest);
}
