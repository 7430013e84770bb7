import { parseSignatureInput } from '@geofence/http-sig';
import { SIGNATURE_LABEL } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { resolveBase } from './options.js';
import { hasSignatureHeaders } from './request-view.js';
import {
  checkPayloadSignature,
  METRICS_COMPONENTS,
  METRICS_PARAMS,
  type ParsedMetrics,
  parseMetricsRequest,
  pinned,
  verifyHeaders,
} from './steps.js';
import type { VerifierBaseOptions, VerifierRequest } from './types.js';

/**
 * A stored, accepted `POST /metrics` for {@link reverifyRecord} (a `StoredRecord` is one): the body
 * bytes and the header fields the collector kept (the HTTP signature is absent when an enforcing
 * gateway stripped it).
 * @public
 */
export interface StoredMetricsRequest {
  /** The body exactly as received. */
  rawBody: Uint8Array;
  /** Header fields kept with the record (`content-type`, `content-digest`, signature headers, …). */
  headers: Readonly<Record<string, string>>;
  /** Request path the collector received it on (default `/metrics`). */
  path?: string;
}

/**
 * One named outcome of {@link reverifyRecord}.
 * @public
 */
export interface RecordCheck {
  /** `payload_schema`, `registry_keyid`, `agent_name`, `agent_status`, `payload_signature` or `http_signature`. */
  check: string;
  /** Whether it holds. */
  ok: boolean;
  /** Why not, or what was not checked. */
  detail?: string;
}

/**
 * Result of {@link reverifyRecord}.
 * @public
 */
export interface RecordReverification {
  /** Every check holds. */
  valid: boolean;
  /** The checks in order; after a failed `payload_schema` or `registry_keyid` nothing else is checked. */
  checks: RecordCheck[];
}

function failureDetail(err: unknown): string {
  const ge = GeofenceError.from(err);
  const reason = ge.details?.reason;
  return typeof reason === 'string' ? `${ge.message}: ${reason}` : ge.message;
}

/**
 * Offline re-verification of an accepted record against the *current* registry (SPEC §10 data
 * provenance), with the collector's own steps: the body checks of `request_validation` (JSON without
 * duplicate member names, payload schema, Content-Digest), the agent, the low-s payload signature
 * and, when it was kept, the RFC 9421 signature — at its own `created` time, so an old record still
 * verifies. Nothing is consumed and no time, nonce or geo decision is replayed: those belonged to the
 * moment of acceptance and are in the record's verdict. A revoked or re-keyed agent makes the record
 * fail `agent_status` / `registry_keyid`: its provenance can no longer be vouched for.
 * @public
 */
export async function reverifyRecord(
  stored: StoredMetricsRequest,
  options: { registry: VerifierBaseOptions['registry'] },
): Promise<RecordReverification> {
  const checks: RecordCheck[] = [];
  const add = (check: string, ok: boolean, detail?: string): boolean => {
    checks.push(detail === undefined ? { check, ok } : { check, ok, detail });
    return ok;
  };
  const done = (): RecordReverification => ({ valid: checks.every((c) => c.ok), checks });
  // Only application/json was ever accepted: a record kept without its Content-Type (an older or
  // foreign store) is read as what it was accepted as; a kept one is checked like any other.
  const headers: Record<string, string> = { 'content-type': 'application/json', ...stored.headers };
  const req: VerifierRequest = {
    method: 'POST',
    url: stored.path ?? '/metrics',
    headers,
    rawBody: stored.rawBody,
  };
  const signed = hasSignatureHeaders(req);
  let created: number | undefined;
  if (signed) {
    try {
      created = parseSignatureInput(headers['signature-input'] ?? '').find(
        (m) => m.label === SIGNATURE_LABEL,
      )?.created;
    } catch {
      created = undefined; // verifyHeaders reports what is wrong with the header
    }
  }
  const at = created !== undefined ? new Date(created * 1000) : new Date();
  const r = resolveBase({ registry: options.registry, now: () => at }, 'reverifyRecord');
  let parsed: ParsedMetrics;
  try {
    parsed = parseMetricsRequest(req, { ...r, bodyLimit: Number.POSITIVE_INFINITY }, false);
  } catch (err) {
    add('payload_schema', false, failureDetail(err));
    return done();
  }
  add('payload_schema', true);
  const { payload, raw } = parsed;
  const record = await options.registry.getByKeyid(payload.tpm_public_key_hash);
  if (!add('registry_keyid', record !== undefined, record ? undefined : 'keyid no longer in the registry')) {
    return done();
  }
  add('agent_name', record!.agent_name === payload.agent_name, `registry: ${record!.agent_name}`);
  add('agent_status', record!.status === 'active', `status: ${record!.status}`);
  try {
    checkPayloadSignature(raw, payload, record!);
    add('payload_signature', true);
  } catch (err) {
    add('payload_signature', false, failureDetail(err));
  }
  if (!signed) {
    add('http_signature', true, 'not stored (stripped by an enforcing gateway)');
    return done();
  }
  try {
    await verifyHeaders(
      req,
      r,
      METRICS_COMPONENTS,
      METRICS_PARAMS,
      async (keyid) => {
        if (keyid !== record!.keyid) {
          throw new GeofenceError('signature_verification', undefined, {
            details: { reason: 'Signature-Input keyid is not the payload keyid' },
          });
        }
        return pinned(record!);
      },
      true,
    );
    add('http_signature', true);
  } catch (err) {
    add('http_signature', false, failureDetail(err));
  }
  return done();
}
