/**
 * Workload identity (SPEC §4, §5.4): the image digest is the SHA-256 of a file — by default the
 * running entry script — optionally extended once into a PCR so the quote covers the measurement.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { expectedWorkloadPcr } from '@geofence/protocol';
import { AttestationClientError } from './errors.js';

/**
 * Which workload this agent is, and how it is measured.
 * @public
 */
export interface WorkloadIdentity {
  /** Workload name (e.g. `metrics-agent`). */
  name: string;
  /** Workload version. */
  version: string;
  /** File whose SHA-256 is the image digest. Default: the running entry script (`process.argv[1]`). */
  imagePath?: string;
  /**
   * PCR (sha256 bank) to extend the image digest into before quoting, e.g. 23; the verifier's
   * `workloadPcr` policy then checks it. Default: not extended.
   */
  extendPcr?: number;
}

/**
 * The TPM operations workload measurement needs (a `Tpm` of `@geofence/native-tpm` satisfies it).
 * @public
 */
export interface PcrTpm {
  pcrRead(
    selection: Array<{ bank: 'sha256'; pcrs: number[] }>,
  ): Promise<{ [bank: string]: { [pcr: number]: Uint8Array } }>;
  pcrExtend(index: number, digest: Uint8Array): Promise<void>;
}

/**
 * SHA-256 (lowercase hex) of the workload image file, streamed.
 * @public
 */
export async function measureWorkload(imagePath: string | undefined = process.argv[1]): Promise<string> {
  if (!imagePath)
    throw new AttestationClientError('workload_unmeasurable', 'no workload image path (no entry script)');
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(imagePath)) hash.update(chunk as Buffer);
  } catch (err) {
    throw new AttestationClientError('workload_unmeasurable', `cannot read workload image ${imagePath}`, {
      cause: err,
    });
  }
  return hash.digest('hex');
}

/**
 * Makes PCR `pcr` hold exactly one extend of `imageDigestHex` from its reset value (zeros):
 * extends when the PCR is still zero, does nothing when it already holds that measurement, and
 * refuses otherwise (someone else extended it, or another image was measured since the last
 * reset). Resetting PCR 23 is an operator action (`tpm2_pcrreset 23`).
 * @public
 */
export async function ensureWorkloadPcr(tpm: PcrTpm, pcr: number, imageDigestHex: string): Promise<void> {
  const want = expectedWorkloadPcr(imageDigestHex);
  const read = async () => (await tpm.pcrRead([{ bank: 'sha256', pcrs: [pcr] }])).sha256?.[pcr];
  const current = await read();
  if (!current) throw new AttestationClientError('workload_pcr', `PCR ${pcr} (sha256) cannot be read`);
  if (Buffer.from(current).equals(want)) return;
  if (!current.every((b) => b === 0)) {
    throw new AttestationClientError(
      'workload_pcr',
      `PCR ${pcr} already holds another measurement; reset it (tpm2_pcrreset ${pcr}) before measuring this workload`,
    );
  }
  await tpm.pcrExtend(pcr, new Uint8Array(Buffer.from(imageDigestHex, 'hex')));
  const after = await read();
  if (!after || !Buffer.from(after).equals(want)) {
    throw new AttestationClientError(
      'workload_pcr',
      `PCR ${pcr} changed concurrently while measuring the workload`,
    );
  }
}
