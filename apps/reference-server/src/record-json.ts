/**
 * The one JSON shape of a stored record for operators (`GET /metrics/records`, `geofence records
 * list/show -o json`, the console): snake_case as the rest of the wire, the parsed payload next to
 * the raw body (base64) and the signature facts, so a script can read the fields and still
 * re-verify the exact bytes.
 */
import type { RecordHttpSignature, StoredRecord } from '@geofence/verifier';

/** A stored record as the admin API, the CLI and the console show it. */
export interface RecordJson {
  record_id: string;
  agent_name: string;
  keyid: string;
  received_at: string;
  /** What the collector decided (every stored record was accepted). */
  verdict: Record<string, unknown>;
  /** The RFC 9421 signature facts, or `null` when an enforcing gateway stripped the signature. */
  http_signature: RecordHttpSignature | null;
  /** The verified payload. */
  payload: unknown;
  /** The body bytes exactly as received, base64. */
  body_base64: string;
}

/** {@link RecordJson} of a stored record. */
export function recordJson(r: StoredRecord): RecordJson {
  return {
    record_id: r.id,
    agent_name: r.agentName,
    keyid: r.keyid,
    received_at: r.receivedAt,
    verdict: {
      accepted: true,
      checks: r.verdict.checks,
      ...(r.verdict.geo ? { geo: r.verdict.geo } : {}),
      ...(r.verdict.accuracy_m !== undefined ? { accuracy_m: r.verdict.accuracy_m } : {}),
      ...(r.verdict.fix_time !== undefined ? { fix_time: r.verdict.fix_time } : {}),
      rejected_by: null,
    },
    // The stored facts already carry the wire's field names.
    http_signature: r.httpSignature,
    payload: r.payload,
    body_base64: Buffer.from(r.rawBody).toString('base64'),
  };
}
