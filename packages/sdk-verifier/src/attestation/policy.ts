/**
 * Reference values for platform (PCR) and workload (image digest) appraisal, shared by enrolment
 * and location attestation so both apply exactly the same policy.
 */

import { expectedWorkloadPcr, fromHex, toHex } from '@geofence/protocol';
import type { PcrSelection, PcrValues } from '@geofence/tpm-wire';
import { attestationError } from './errors.js';

/**
 * A PCR bank name as used by `@geofence/tpm-wire`.
 * @public
 */
export type PcrBank = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/**
 * Reference values: for each bank and PCR index, the lowercase-hex digests that are acceptable
 * (a single string or a list of alternatives, e.g. two approved firmware versions).
 *
 * @example
 * ```ts
 * const pcrs: PcrReferenceValues = { sha256: { 0: ['3d45…', '9a1f…'], 7: '65ca…' } };
 * ```
 * @public
 */
export type PcrReferenceValues = Partial<Record<PcrBank, Record<number, string | readonly string[]>>>;

/**
 * Platform and workload policy of the appraisal.
 * @public
 */
export interface PlatformPolicy {
  /**
   * PCR reference values. When absent or empty the PCRs are only recorded and results say
   * `platform_integrity: "recorded"` instead of `"verified"`.
   */
  pcrs?: PcrReferenceValues;
  /** Approved workload image digests (lowercase hex SHA-256). When absent any digest is recorded. */
  workloadDigests?: readonly string[];
  /**
   * PCR (sha256 bank) into which the agent extends its image digest once after a reset (usually 23).
   * When set, the quoted value must equal SHA-256(32 zero bytes ‖ image digest) for the claimed
   * digest, which ties the claimed digest to a TPM measurement.
   */
  workloadPcr?: number;
  /**
   * PCRs to quote when no reference values are configured (record-only mode).
   * Default: sha256 PCRs 0–7.
   */
  recordPcrs?: PcrSelection;
}

/** Outcome of the platform and workload checks. */
export interface PlatformAppraisal {
  /** `verified` when reference values were configured and matched, `recorded` otherwise. */
  platformIntegrity: 'verified' | 'recorded';
  /** `verified` when the image digest is on the approved list (and in the workload PCR when configured). */
  agentIntegrity: 'verified' | 'recorded';
  /** Quoted PCR values, hex, for the registry record and the result. */
  pcrs: Record<string, Record<string, string>>;
}

const BANKS: readonly PcrBank[] = ['sha1', 'sha256', 'sha384', 'sha512'];

function addToSelection(sel: Map<PcrBank, Set<number>>, bank: PcrBank, pcr: number): void {
  let s = sel.get(bank);
  if (!s) {
    s = new Set();
    sel.set(bank, s);
  }
  s.add(pcr);
}

/**
 * The PCR selection an agent must quote so that `policy` can be appraised: every PCR with a
 * reference value, the workload PCR, or the record-only default.
 * @public
 */
export function requiredPcrSelection(policy: PlatformPolicy): PcrSelection {
  const sel = new Map<PcrBank, Set<number>>();
  const refs = policy.pcrs ?? {};
  let any = false;
  for (const bank of BANKS) {
    for (const key of Object.keys(refs[bank] ?? {})) {
      addToSelection(sel, bank, Number(key));
      any = true;
    }
  }
  if (!any) {
    for (const { bank, pcrs } of policy.recordPcrs ?? [{ bank: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }]) {
      for (const p of pcrs) addToSelection(sel, bank, p);
    }
  }
  if (policy.workloadPcr !== undefined) addToSelection(sel, 'sha256', policy.workloadPcr);
  return BANKS.filter((b) => sel.has(b)).map((bank) => ({
    bank,
    pcrs: [...(sel.get(bank) ?? [])].sort((a, b) => a - b),
  }));
}

/**
 * Validates a policy at configuration time (indexes 0–23, lowercase hex of the bank's size), so
 * that a typo fails at start rather than silently rejecting (or accepting) every agent.
 * @public
 */
export function validatePlatformPolicy(policy: PlatformPolicy): void {
  const sizes: Record<PcrBank, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };
  const isIndex = (n: number) => Number.isInteger(n) && n >= 0 && n <= 23;
  for (const [bank, entries] of Object.entries(policy.pcrs ?? {})) {
    if (!BANKS.includes(bank as PcrBank)) throw new TypeError(`PCR policy: unknown bank ${bank}`);
    for (const [idx, v] of Object.entries(entries ?? {})) {
      if (!isIndex(Number(idx))) throw new TypeError(`PCR policy: ${bank} index ${idx} is not 0..23`);
      const list = typeof v === 'string' ? [v] : v;
      if (list.length === 0) throw new TypeError(`PCR policy: ${bank}:${idx} has no reference value`);
      for (const hex of list) {
        if (fromHex(hex)?.byteLength !== sizes[bank as PcrBank]) {
          throw new TypeError(
            `PCR policy: ${bank}:${idx} value is not lowercase hex of ${sizes[bank as PcrBank]} bytes`,
          );
        }
      }
    }
  }
  for (const d of policy.workloadDigests ?? []) {
    if (fromHex(d)?.byteLength !== 32)
      throw new TypeError(`workload digest ${d} is not lowercase hex SHA-256`);
  }
  if (policy.workloadPcr !== undefined && !isIndex(policy.workloadPcr)) {
    throw new TypeError('workloadPcr must be a PCR index 0..23');
  }
}

function hasPcr(selection: PcrSelection, bank: string, pcr: number): boolean {
  return selection.some((s) => s.bank === bank && s.pcrs.includes(pcr));
}

/**
 * Appraises quoted PCR values (already proven to match the quote digest) and the claimed image
 * digest against `policy`. Throws the `attestation` rejection naming the failed check:
 * `pcr_selection` (a PCR the policy needs was not quoted), `pcr_policy`, `workload_digest`,
 * `workload_pcr`.
 */
export function appraisePlatform(
  policy: PlatformPolicy,
  quotedSelection: PcrSelection,
  pcrValues: PcrValues,
  imageDigestHex: string,
): PlatformAppraisal {
  const required = requiredPcrSelection(policy);
  for (const { bank, pcrs } of required) {
    for (const p of pcrs) {
      if (!hasPcr(quotedSelection, bank, p)) {
        throw attestationError('pcr_selection', 'the quote does not cover a PCR the policy requires', {
          bank,
          pcr: p,
        });
      }
    }
  }
  const recorded: Record<string, Record<string, string>> = {};
  for (const { bank, pcrs } of quotedSelection) {
    const values = pcrValues[bank] ?? {};
    const out: Record<string, string> = {};
    for (const p of pcrs) {
      const v = values[p];
      if (v) out[String(p)] = toHex(v);
    }
    recorded[bank] = out;
  }
  let checked = 0;
  for (const bank of BANKS) {
    for (const [idx, allowed] of Object.entries(policy.pcrs?.[bank] ?? {})) {
      const got = recorded[bank]?.[idx];
      const list = typeof allowed === 'string' ? [allowed] : allowed;
      if (got === undefined || !list.includes(got)) {
        throw attestationError('pcr_policy', 'a PCR value differs from the reference values', {
          bank,
          pcr: Number(idx),
          received: got ?? null,
        });
      }
      checked++;
    }
  }
  const digests = policy.workloadDigests;
  if (digests !== undefined && !digests.includes(imageDigestHex)) {
    throw attestationError(
      'workload_digest',
      'the workload image digest is not an approved reference value',
      {
        image_digest: imageDigestHex,
      },
    );
  }
  if (policy.workloadPcr !== undefined) {
    const got = recorded.sha256?.[String(policy.workloadPcr)];
    const want = toHex(expectedWorkloadPcr(imageDigestHex));
    if (got !== want) {
      throw attestationError('workload_pcr', 'the workload PCR does not hold the measured image digest', {
        pcr: policy.workloadPcr,
        expected: want,
        received: got ?? null,
      });
    }
  }
  return {
    platformIntegrity: checked > 0 ? 'verified' : 'recorded',
    agentIntegrity: digests !== undefined && digests.length > 0 ? 'verified' : 'recorded',
    pcrs: recorded,
  };
}
