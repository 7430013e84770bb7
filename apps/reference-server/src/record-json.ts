/**
 * The JSON shape of a stored record for operators (`GET /metrics/records`, `geofence records
 * list/show -o json`): the parsed payload next to the raw body (base64), so a script can read the
 * fields and still re-verify the exact bytes.
 */
import type { StoredRecord } from './records.js';

/** A stored record as the admin API and the CLI print it. */
export interface RecordJson {
  record_id: string;
  agent_name: string;
  keyid: string;
  received_at: string;
  verdict: Record<string, unknown>;
  /** The body parsed as JSON (`null` if it does not parse). */
  payload: unknown;
  body_base64: string;
}

/** {@link RecordJson} of a stored record. */
export function recordJson(r: StoredRecord): RecordJson {
  let payload: unknown = null;
  try {
    payload = JSON.parse(r.body.toString('utf8'));
  } catch {
    // Only verified JSON is stored; a damaged row shows as null and still has its bytes.
  }
  return {
    record_id: r.id,
    agent_name: r.agentName,
    keyid: r.keyid,
    received_at: r.receivedAt,
    verdict: r.verdict,
    payload,
    body_base64: r.body.toString('base64'),
  };
}
