import {
  HttpSigError,
  type PinnedVerificationKey,
  type VerifiedSignature,
  verifyContentDigest,
  verifyRequest,
} from '@geofence/http-sig';
import {
  compileSchemaCheck,
  foldPlaceName,
  hasDuplicateJsonKeys,
  MAX_SIGNATURE_VALIDITY_SECONDS,
  METRICS_SIGNATURE_COMPONENTS,
  type MetricsPayload,
  metricsPayloadSchema,
  NONCE_SIGNATURE_COMPONENTS,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  verifyPayloadSignature,
  WORKLOAD_GEO_ID_HEADER,
  type WorkloadGeoId,
  workloadGeoIdSchema,
} from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { evaluateGeoPolicy, type GeoMatch, type GeoPolicy, geoPolicyRestricts } from '../geo.js';
import { type AgentRecord, recordPublicKey } from '../storage/registry.js';
import type { Resolved } from './options.js';
import { bad, hasSignatureHeaders, header, httpMessage, joinedHeader, singleHeader } from './request-view.js';
import type { VerifierBaseOptions, VerifierRequest } from './types.js';

/**
 * Hot-path predicates compiled from the schemas themselves: true only for values zod would accept
 * unchanged (skipping zod's copy of every object); anything else is parsed by zod, which decides
 * and describes the errors.
 */
const isValidPayload = compileSchemaCheck(metricsPayloadSchema);
const isValidWorkloadGeoId = compileSchemaCheck(workloadGeoIdSchema);

/** The `message` of a 200 from `POST /metrics` (the original product's wording). */
export const SUCCESS_MESSAGE = 'Metrics received and verified successfully';
/** Signature parameters `POST /metrics` must carry (SPEC §6.3). */
export const METRICS_PARAMS = ['created', 'expires', 'keyid', 'alg', 'nonce', 'tag'] as const;
/** Signature parameters a signed `GET /nonce` must carry (the same minus `nonce`). */
export const NONCE_PARAMS = ['created', 'expires', 'keyid', 'alg', 'tag'] as const;
/** Covered components of `POST /metrics`. */
export const METRICS_COMPONENTS: readonly string[] = METRICS_SIGNATURE_COMPONENTS;
/** Covered components of `GET /nonce`. */
export const NONCE_COMPONENTS: readonly string[] = NONCE_SIGNATURE_COMPONENTS;

function mapHttpSigError(err: unknown): GeofenceError {
  if (err instanceof GeofenceError) return err;
  if (err instanceof HttpSigError) {
    switch (err.code) {
      case 'bad_signature':
      case 'alg_mismatch':
        return new GeofenceError('signature_verification', undefined, {
          details: { signature: 'http', reason: err.code },
          cause: err,
        });
      case 'expired':
      case 'not_yet_valid':
        return new GeofenceError('timestamp_proximity', undefined, {
          details: { field: 'signature', reason: err.code },
          cause: err,
        });
      case 'nonce_rejected':
        return new GeofenceError('nonce_validation', undefined, { cause: err });
      case 'unknown_key':
        return new GeofenceError('agent_verification', undefined, { cause: err });
      case 'digest_mismatch':
        return bad('Content-Digest does not match the body', { reason: err.code });
      default:
        return bad('Invalid signature headers', { reason: err.code, message: err.message });
    }
  }
  return GeofenceError.from(err);
}

/**
 * Valid Workload-Geo-ID values seen recently, by header text: an agent sends the same value with every
 * request, so parsing and validating it again is waste. Only values that passed every check are stored
 * (deep-frozen; they never leave this module); bounded, and simply emptied when full, so distinct
 * headers cost memory of at most GEO_CACHE_MAX × 4 KiB.
 */
const geoCache = new Map<string, WorkloadGeoId>();
const GEO_CACHE_MAX = 512;

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

function parseWorkloadGeoId(req: VerifierRequest): WorkloadGeoId | undefined {
  const text = singleHeader(req, WORKLOAD_GEO_ID_HEADER);
  if (text === undefined) return undefined;
  const cached = geoCache.get(text);
  if (cached !== undefined) return cached;
  if (text.length > 4096) throw bad('Invalid Workload-Geo-ID header', { reason: 'too long' });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw bad('Invalid Workload-Geo-ID header', { reason: 'not JSON' });
  }
  if (hasDuplicateJsonKeys(text, json))
    throw bad('Invalid Workload-Geo-ID header', { reason: 'duplicate member names' });
  if (isValidWorkloadGeoId(json)) {
    if (geoCache.size >= GEO_CACHE_MAX) geoCache.clear();
    geoCache.set(text, deepFreeze(json as WorkloadGeoId));
    return json as WorkloadGeoId;
  }
  const parsed = workloadGeoIdSchema.safeParse(json);
  if (!parsed.success) throw bad('Invalid Workload-Geo-ID header', { issues: issues(parsed.error.issues) });
  return parsed.data;
}

function issues(
  list: ReadonlyArray<{ path: PropertyKey[]; message: string }>,
): Array<{ path: string; message: string }> {
  // Bounded: paths and messages can echo attacker-chosen member names.
  return list.slice(0, 10).map((i) => ({
    path: i.path.map(String).join('.').slice(0, 200),
    message: i.message.slice(0, 200),
  }));
}

/** The outcome of the body checks of `POST /metrics`. */
export interface ParsedMetrics {
  payload: MetricsPayload;
  raw: Record<string, unknown>;
  geoHeader: WorkloadGeoId | undefined;
}

/** Step 1 — request_validation: method, size, media type, JSON, schema, Content-Digest, Workload-Geo-ID. */
/** Header fields of `POST /metrics` that must arrive as one line (or repeated lines with one value). */
const SINGLE_LINE_HEADERS: ReadonlySet<string> = new Set([
  ...METRICS_SIGNATURE_COMPONENTS.filter((c) => !c.startsWith('@')),
  'content-encoding',
]);

/**
 * Framing (request_validation): a covered header that arrives as two lines with different values is
 * refused — Node keeps the first `Content-Type`, another parser may keep the last, and a signature
 * must not mean two things. Any `Content-Encoding` but `identity` is 415: the digest and the signature
 * cover the bytes as sent, and nothing here decodes them.
 */
function checkFraming(req: VerifierRequest): void {
  const raw = req.rawHeaders;
  if (raw !== undefined) {
    const seen = new Map<string, string>();
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (!SINGLE_LINE_HEADERS.has(name)) continue;
      const value = raw[i + 1]!.trim();
      const first = seen.get(name);
      if (first === undefined) seen.set(name, value);
      else if (first !== value)
        throw bad(`Duplicate ${name} header`, { reason: 'repeated with different values' });
    }
  }
  const encoding = joinedHeader(req, 'content-encoding');
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    throw bad('Unsupported content encoding', { expected: 'identity' }, 415);
  }
}

/** Step 1 of `POST /metrics` — framing, size, media type, JSON without duplicate members, schema, Content-Digest, Workload-Geo-ID. */
export function parseMetricsRequest(
  req: VerifierRequest,
  r: Resolved,
  requireHeaders: boolean,
): ParsedMetrics {
  if (req.method !== 'POST') throw bad('Method not allowed', { method: req.method }, 405);
  checkFraming(req);
  const body = req.rawBody;
  if (body === undefined) throw bad('Invalid payload structure', { reason: 'empty body' });
  if (body.byteLength > r.bodyLimit) throw bad('Payload too large', { limit: r.bodyLimit }, 413);
  const ct = singleHeader(req, 'content-type');
  const media = ct === 'application/json' ? ct : ct?.split(';', 1)[0]?.trim().toLowerCase();
  if (media !== 'application/json')
    throw bad('Unsupported media type', { expected: 'application/json' }, 415);
  if (requireHeaders) {
    for (const h of ['signature', 'signature-input', 'content-digest', WORKLOAD_GEO_ID_HEADER]) {
      if (header(req, h) === undefined) throw bad(`Missing ${h} header`);
    }
  }
  let raw: unknown;
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('Invalid payload structure', { reason: 'body is not JSON' });
  }
  if (hasDuplicateJsonKeys(text, raw))
    throw bad('Invalid payload structure', { reason: 'duplicate member names' });
  let payload: MetricsPayload;
  if (isValidPayload(raw)) payload = raw as MetricsPayload;
  else {
    const parsed = metricsPayloadSchema.safeParse(raw);
    if (!parsed.success) throw bad('Invalid payload structure', { issues: issues(parsed.error.issues) });
    payload = parsed.data;
  }
  const digest = joinedHeader(req, 'content-digest');
  if (digest !== undefined) {
    try {
      verifyContentDigest(digest, body);
    } catch (err) {
      throw mapHttpSigError(err);
    }
  }
  const geoHeader = parseWorkloadGeoId(req);
  if (hasSignatureHeaders(req) && geoHeader === undefined) throw bad('Missing workload-geo-id header');
  return { payload, raw: raw as Record<string, unknown>, geoHeader };
}

/** Step 2 — agent_verification. */
export async function checkAgent(
  o: VerifierBaseOptions,
  bodyKeyid: string,
  agentName: string | undefined,
  headerKeyid: string | undefined,
): Promise<AgentRecord> {
  if (headerKeyid !== undefined && headerKeyid !== bodyKeyid) {
    throw new GeofenceError('agent_verification', 'Public key hash mismatch', {
      details: { reason: 'Signature-Input keyid differs from tpm_public_key_hash' },
    });
  }
  const record = await o.registry.getByKeyid(bodyKeyid);
  if (!record) {
    throw new GeofenceError('agent_verification', 'Agent not found in allowlist', {
      details: { ...(agentName ? { agent_name: agentName } : {}), public_key_hash: bodyKeyid },
    });
  }
  if (agentName !== undefined && record.agent_name !== agentName) {
    throw new GeofenceError('agent_verification', 'Public key hash mismatch', {
      details: { agent_name: agentName, reason: 'key is registered to another agent' },
    });
  }
  if (record.status !== 'active') {
    throw new GeofenceError('agent_verification', 'Agent is not active', {
      details: { agent_name: record.agent_name, status: record.status },
    });
  }
  return record;
}

/** The record's key and algorithm, for http-sig (no algorithm negotiation). */
export function pinned(record: AgentRecord): PinnedVerificationKey {
  return { key: recordPublicKey(record), alg: record.alg };
}

/** Step 3 (payload part) — signature_verification. */
export function checkPayloadSignature(
  raw: Record<string, unknown>,
  payload: MetricsPayload,
  record: AgentRecord,
): void {
  if (
    payload.algorithm !== record.alg ||
    !verifyPayloadSignature(raw as MetricsPayload, recordPublicKey(record))
  ) {
    throw new GeofenceError('signature_verification', undefined, {
      details: { agent_name: record.agent_name, signature: 'payload' },
    });
  }
}

/** A timestamp_proximity failure (module level: no closure per request). */
function fail(field: string, reason: string): GeofenceError {
  return new GeofenceError('timestamp_proximity', undefined, { details: { field, reason } });
}

/** Step 4 — timestamp_proximity for the payload timestamp and the header created/expires. */
export function checkTimes(
  r: Resolved,
  now: number,
  payloadTimestamp: string | undefined,
  sig: VerifiedSignature | undefined,
): void {
  if (payloadTimestamp !== undefined) {
    const t = Date.parse(payloadTimestamp);
    if (!Number.isFinite(t) || t > now + r.skewMs) throw fail('timestamp', 'in the future');
    if (now - t > r.maxAgeMs + r.skewMs) throw fail('timestamp', 'too old');
  }
  if (sig) {
    if (sig.created === undefined || sig.expires === undefined)
      throw fail('signature', 'created and expires are required');
    const created = sig.created * 1000;
    const expires = sig.expires * 1000;
    if (expires <= created || expires - created > MAX_SIGNATURE_VALIDITY_SECONDS * 1000) {
      throw fail('signature', `expires - created must be in 1..${MAX_SIGNATURE_VALIDITY_SECONDS} s`);
    }
    if (created > now + r.skewMs) throw fail('signature', 'created is in the future');
    if (now > expires + r.skewMs) throw fail('signature', 'signature has expired');
    if (now - created > r.maxAgeMs + r.skewMs) throw fail('signature', 'created is too old');
  }
}

function samePlace(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || a === '' || b === undefined || b === '') return (a ?? '') === (b ?? '');
  return foldPlaceName(a) === foldPlaceName(b);
}

/** Step 6 — geolocation_policy. */
export function checkGeo(
  o: VerifierBaseOptions,
  r: Resolved,
  now: Date,
  agentName: string,
  record: AgentRecord | undefined,
  payload: MetricsPayload,
  geoHeader: WorkloadGeoId | undefined,
): GeoMatch[] {
  const region = payload.geographic_region;
  if (geoHeader) {
    const h = geoHeader.client_workload_location;
    if (
      !samePlace(h.region, region.region) ||
      !samePlace(h.state, region.state) ||
      !samePlace(h.city, region.city)
    ) {
      throw new GeofenceError('geolocation_policy', undefined, {
        details: {
          agent_name: agentName,
          reason: 'Workload-Geo-ID location does not match geographic_region',
          expected: region,
          received: { region: h.region, state: h.state, city: h.city },
        },
      });
    }
  }
  const policies = [record?.geo_policy, o.geoPolicy].filter((p): p is GeoPolicy => p !== undefined);
  if (r.requireGeoPolicy && !policies.some(geoPolicyRestricts)) {
    throw new GeofenceError('geolocation_policy', undefined, {
      details: { agent_name: agentName, reason: 'No geographic policy configured for this agent' },
    });
  }
  const observation = {
    region,
    point: payload.location,
    quality: payload.location?.quality ?? geoHeader?.client_workload_location_quality,
    fixTime: payload.location?.fix_time,
    now,
    clockSkewSeconds: r.skewMs / 1000,
  };
  const matches: GeoMatch[] = [];
  for (const policy of policies) {
    const d = evaluateGeoPolicy(policy, observation);
    if (d.allowed) {
      const { allowed: _, ...match } = d;
      matches.push(match);
      continue;
    }
    throw new GeofenceError('geolocation_policy', undefined, {
      details: {
        agent_name: agentName,
        check: d.check,
        reason: d.reason,
        expected: d.expected,
        received: d.received,
      },
    });
  }
  return matches;
}

/** The nonce of the RFC 9421 signature must be the payload's. */
export function checkHeaderNonce(sig: VerifiedSignature | undefined, payload: MetricsPayload): void {
  if (sig && sig.nonce !== payload.nonce) {
    throw new GeofenceError('nonce_validation', undefined, {
      details: { reason: 'Signature-Input nonce differs from the payload nonce' },
    });
  }
}

/** Thrown from the key lookup to stop after the syntax and agent checks (no stack trace to build). */
const SKIP: unique symbol = Symbol('skip-crypto');

/** Steps 2–3 for the RFC 9421 headers: one `verifyRequest` whose key lookup runs the agent checks. */
export async function verifyHeaders(
  req: VerifierRequest,
  r: Resolved,
  components: readonly string[],
  params: readonly ('created' | 'expires' | 'keyid' | 'alg' | 'nonce' | 'tag')[],
  lookup: (keyid: string) => Promise<PinnedVerificationKey>,
  crypto: boolean,
): Promise<VerifiedSignature | undefined> {
  try {
    return await verifyRequest(httpMessage(req), {
      // With crypto the agent lookup is the key lookup itself (one promise layer fewer on the hot path).
      keyLookup: crypto
        ? lookup
        : async (keyid) => {
            await lookup(keyid);
            throw SKIP;
          },
      label: SIGNATURE_LABEL,
      tag: SIGNATURE_TAG,
      requiredComponents: components,
      requiredParams: params,
      algorithms: ['ecdsa-p256-sha256', 'rsa-v1_5-sha256'],
      requireLowS: true, // one valid signature per message (no (r, n − s) twin)
      // Time checks are step 4 (timestamp_proximity), after the signature: disable them here.
      clockSkewSeconds: Number.POSITIVE_INFINITY,
      checkContentDigest: false, // step 1 already compared Content-Digest with the body
      now: r.now(),
    });
  } catch (err) {
    if (err === SKIP) return undefined;
    throw mapHttpSigError(err);
  }
}
