/**
 * `geofence verify-record <id>`: offline re-verification of a stored record (data provenance, SPEC §10).
 * Checks, against the current registry: the stored body parses and matches the payload schema, its
 * keyid and agent name belong to one registry record, and the payload signature verifies with that
 * record's public key. When RFC 9421 headers were stored (standard mode), the header signature and the
 * Content-Digest are re-verified too, at the signature's own `created` time.
 */
import { parseSignatureInput, verifyRequest } from '@geofence/http-sig';
import type { Registry } from '@geofence/verifier';
import {
  METRICS_SIGNATURE_COMPONENTS,
  metricsPayloadSchema,
  recordPublicKey,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  verifyPayloadSignature,
} from '@geofence/verifier';
import type { Config } from './config.js';
import type { RecordStore, StoredRecord } from './records.js';
import { openRecords, openRegistry } from './runtime.js';

/** Outcome of {@link verifyStoredRecord}. */
export interface RecordVerification {
  record_id: string;
  agent_name: string;
  received_at: string;
  valid: boolean;
  checks: Array<{ check: string; ok: boolean; detail?: string }>;
}

/** Re-verifies one stored record. */
export async function verifyStoredRecord(rec: StoredRecord, registry: Registry): Promise<RecordVerification> {
  const checks: RecordVerification['checks'] = [];
  const add = (check: string, ok: boolean, detail?: string) => {
    checks.push(detail === undefined ? { check, ok } : { check, ok, detail });
    return ok;
  };
  const result = (): RecordVerification => ({
    record_id: rec.id,
    agent_name: rec.agentName,
    received_at: rec.receivedAt,
    valid: checks.every((c) => c.ok),
    checks,
  });

  let json: unknown;
  try {
    json = JSON.parse(rec.body.toString('utf8'));
  } catch {
    add('body_json', false, 'stored body is not JSON');
    return result();
  }
  const parsed = metricsPayloadSchema.safeParse(json);
  if (!add('payload_schema', parsed.success, parsed.success ? undefined : parsed.error.issues[0]?.message)) {
    return result();
  }
  const payload = parsed.data!;
  const agent = await registry.getByKeyid(payload.tpm_public_key_hash);
  if (!add('registry_keyid', agent !== undefined, agent ? undefined : 'keyid no longer in the registry')) {
    return result();
  }
  add('agent_name', agent!.agent_name === payload.agent_name, `registry: ${agent!.agent_name}`);
  add('agent_status', agent!.status === 'active', `status: ${agent!.status}`);
  const key = recordPublicKey(agent!);
  add('payload_signature', verifyPayloadSignature(payload, key));

  const sigInput = rec.headers['signature-input'];
  if (sigInput && rec.headers.signature) {
    // A malformed header yields no time here; verifyRequest below then reports what is wrong with it.
    let created: number | undefined;
    try {
      created = parseSignatureInput(sigInput).find((m) => m.label === SIGNATURE_LABEL)?.created;
    } catch {
      created = undefined;
    }
    try {
      await verifyRequest(
        {
          method: 'POST',
          url: `https://collector${String(rec.verdict.path ?? '/metrics')}`,
          headers: rec.headers,
          body: new Uint8Array(rec.body),
        },
        {
          keyLookup: async (kid) => (kid === agent!.keyid ? key : undefined),
          label: SIGNATURE_LABEL,
          tag: SIGNATURE_TAG,
          requiredComponents: METRICS_SIGNATURE_COMPONENTS,
          ...(created !== undefined ? { now: created } : {}),
        },
      );
      add('http_signature', true);
    } catch (e) {
      add('http_signature', false, (e as Error).message);
    }
  } else {
    checks.push({
      check: 'http_signature',
      ok: true,
      detail: 'not stored (stripped by an enforcing gateway)',
    });
  }
  return result();
}

/** CLI entry: prints the verification as JSON; exit code 0 valid, 1 invalid, 2 unknown record. */
export async function verifyRecordCommand(cfg: Config, id: string): Promise<number> {
  let records: RecordStore | undefined;
  const registry = await openRegistry(cfg);
  try {
    records = openRecords(cfg);
    const rec = records.get(id);
    if (!rec) {
      process.stderr.write(`geofence: record ${id} not found\n`);
      return 2;
    }
    const v = await verifyStoredRecord(rec, registry);
    process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
    return v.valid ? 0 : 1;
  } finally {
    records?.close();
    await registry.close();
  }
}
