/**
 * `geofence verify-record <id>`: offline re-verification of a stored record (data provenance, SPEC §10),
 * by the verifier's own `reverifyRecord` against the current registry: body and payload schema, keyid
 * and agent name in one registry record, the payload signature, and — when the RFC 9421 headers were
 * stored (standard mode) — the header signature at its own `created` time.
 */
import {
  type RecordCheck,
  type RecordStore,
  type Registry,
  reverifyRecord,
  type StoredRecord,
} from '@geofence/verifier';
import type { Config } from './config.js';
import { err, type OutputFormat, out, printJson, printTable } from './output.js';
import { openRecords, openRegistry } from './runtime.js';

/** Outcome of {@link verifyStoredRecord}. */
export interface RecordVerification {
  record_id: string;
  agent_name: string;
  received_at: string;
  valid: boolean;
  checks: RecordCheck[];
}

/** Re-verifies one stored record. */
export async function verifyStoredRecord(rec: StoredRecord, registry: Registry): Promise<RecordVerification> {
  const v = await reverifyRecord(rec, { registry });
  return {
    record_id: rec.id,
    agent_name: rec.agentName,
    received_at: rec.receivedAt,
    valid: v.valid,
    checks: v.checks,
  };
}

/**
 * CLI entry: prints the verification (a table of checks, or `json`); exit code 0 valid, 1 invalid,
 * 2 unknown record.
 */
export async function verifyRecordCommand(
  cfg: Config,
  id: string,
  format: OutputFormat = 'table',
): Promise<number> {
  let records: RecordStore | undefined;
  const registry = await openRegistry(cfg);
  try {
    records = await openRecords(cfg);
    const rec = await records.get(id);
    if (!rec) {
      err(`record ${id} not found`);
      return 2;
    }
    const v = await verifyStoredRecord(rec, registry);
    if (format === 'json') printJson(v);
    else {
      out(`${v.record_id} (${v.agent_name}, received ${v.received_at}): ${v.valid ? 'valid' : 'INVALID'}`);
      printTable([
        ['check', 'result', 'detail'],
        ...v.checks.map((c) => [c.check, c.ok ? 'ok' : 'FAIL', c.detail ?? '']),
      ]);
    }
    return v.valid ? 0 : 1;
  } finally {
    await records?.close();
    await registry.close();
  }
}
