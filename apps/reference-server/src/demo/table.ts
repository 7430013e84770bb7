/**
 * The demo's results table: scenario × mode → status, validation_type, rejected_by, as expected?
 */

import { GeofenceRejection } from '@geofence/agent';

/** Deployment modes of the demo (SPEC §6.4). */
export type DemoMode = 'standard' | 'gateway-policy-enforcement';

/** Column `mode` of the table: a deployment mode, or the Proof-of-Geofencing part run after them. */
export type TableMode = DemoMode | 'proof-of-geofencing';

/** What a scenario observed. */
export interface Observed {
  status: number | null;
  validationType: string | null;
  rejectedBy: string | null;
  /** Extra note (record id, error text). */
  note?: string;
}

/** What a scenario must observe. */
export interface Expected {
  status: number;
  validationType: string | null;
  rejectedBy: string | null;
}

/** One row of the table. */
export interface ResultRow {
  scenario: string;
  mode: TableMode;
  expected: Expected;
  observed: Observed;
  ok: boolean;
}

/** Whether `observed` matches `expected` exactly. */
export function matches(expected: Expected, observed: Observed): boolean {
  return (
    observed.status === expected.status &&
    observed.validationType === expected.validationType &&
    observed.rejectedBy === expected.rejectedBy
  );
}

/**
 * Cross-mode check of SPEC §6.4: the same scenario yields the same status and validation_type in both
 * modes. Returns one message per violation.
 */
export function crossModeViolations(rows: ResultRow[]): string[] {
  const out: string[] = [];
  const byScenario = new Map<string, ResultRow[]>();
  for (const r of rows) byScenario.set(r.scenario, [...(byScenario.get(r.scenario) ?? []), r]);
  for (const [scenario, rs] of byScenario) {
    const [a, b] = rs;
    if (!a || !b) continue;
    if (a.observed.status !== b.observed.status || a.observed.validationType !== b.observed.validationType) {
      out.push(
        `${scenario}: ${a.mode} gave ${a.observed.status} ${a.observed.validationType ?? '-'}, ` +
          `${b.mode} gave ${b.observed.status} ${b.observed.validationType ?? '-'}`,
      );
    }
  }
  return out;
}

function pad(s: string, n: number): string {
  const len = [...s].length;
  return len >= n ? s : s + ' '.repeat(n - len);
}

/** Renders the table as aligned plain text (no colours: works in CI logs and pipes). */
export function renderTable(rows: ResultRow[]): string {
  const header = ['scenario', 'mode', 'status', 'validation_type', 'rejected_by', 'expected', 'ok'];
  const body = rows.map((r) => [
    r.scenario,
    r.mode,
    r.observed.status === null ? 'error' : String(r.observed.status),
    r.observed.validationType ?? '-',
    r.observed.rejectedBy ?? '-',
    `${r.expected.status} ${r.expected.validationType ?? '-'} ${r.expected.rejectedBy ?? '-'}`,
    r.ok ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => [...(row[i] ?? '')].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => pad(c, widths[i] ?? 0)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(header), sep, ...body.map(line)].join('\n');
}

/** What an HTTP answer observed (a problem body's validation_type and rejected_by). */
export function observe(status: number | null, body: unknown, note?: string): Observed {
  const b = (body ?? {}) as { validation_type?: string; rejected_by?: string };
  return {
    status,
    validationType: status === 200 ? null : (b.validation_type ?? null),
    rejectedBy: status === 200 ? null : (b.rejected_by ?? null),
    ...(note ? { note } : {}),
  };
}

/** What a thrown error observed: a rejection's problem fields, else the error text. */
export function fromError(err: unknown): Observed {
  if (err instanceof GeofenceRejection) {
    return {
      status: err.status,
      validationType: err.validationType,
      rejectedBy: err.rejectedBy ?? null,
      note: String(err.details?.check ?? err.error),
    };
  }
  return {
    status: null,
    validationType: null,
    rejectedBy: null,
    note: (err as Error).message ?? String(err),
  };
}

/** One-line rendering of an observation for the progress log. */
export function describeObserved(observed: Observed): string {
  return observed.status === 200
    ? `200${observed.note ? ` ${observed.note}` : ''}`
    : `${observed.status ?? 'error'} ${observed.validationType ?? '-'} (rejected_by ${observed.rejectedBy ?? '-'})`;
}
