/**
 * The verification pipeline of SPEC §6.4, framework-agnostic. Each step throws a
 * {@link GeofenceError} of its validation type; the first failure wins.
 *
 * The RFC 9421 check is a single `verifyRequest` call of `@geofence/http-sig` whose key lookup runs the
 * agent checks: header syntax errors surface before (step 1), agent errors inside (step 2), and
 * cryptographic errors after the lookup (step 3) — the SPEC order without parsing the headers twice.
 */
import {
  type HttpMessage,
  HttpSigError,
  type PinnedVerificationKey,
  type VerifiedSignature,
  verifyContentDigest,
  verifyRequest,
} from '@geofence/http-sig';
import { GeofenceError } from '../errors.js';
import {
  evaluateGeoPolicy,
  foldPlaceName,
  type GeoMatch,
  type GeoPolicy,
  geoPolicyRestricts,
} from '../geo.js';
import {
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_CLOCK_SKEW_SECONDS,
  keyidSchema,
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
} from '../protocol.js';
import { type AgentRecord, recordPublicKey } from '../storage/registry.js';
import {
  fastContentDigest,
  fastHasDuplicateJsonKeys,
  fastValidPayload,
  fastValidWorkloadGeoId,
} from './fast-validate.js';
import { createMemoryRecordSink } from './records.js';
import type {
  CollectorOptions,
  GatewayOptions,
  GatewayVerdict,
  MetricsVerdict,
  NonceEndpointOptions,
  NonceVerdict,
  VerifierBaseOptions,
  VerifierRequest,
} from './types.js';

const SUCCESS_MESSAGE = 'Metrics received and verified successfully';
const METRICS_PARAMS = ['created', 'expires', 'keyid', 'alg', 'nonce', 'tag'] as const;
const NONCE_PARAMS = ['created', 'expires', 'keyid', 'alg', 'tag'] as const;
const METRICS_COMPONENTS: readonly string[] = METRICS_SIGNATURE_COMPONENTS;
const NONCE_COMPONENTS: readonly string[] = NONCE_SIGNATURE_COMPONENTS;

interface Resolved {
  skewMs: number;
  maxAgeMs: number;
  bodyLimit: number;
  requireGeoPolicy: boolean;
  now: () => Date;
}

const resolvedCache = new WeakMap<object, Resolved>();

function positive(name: string, v: number | undefined, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new TypeError(
      `@geofence/verifier: option ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`,
    );
  }
  return v;
}

/**
 * Validate options and fill defaults; throws TypeError with a clear message. Cached per options object.
 * @internal
 */
export function resolveBase(
  o: Partial<VerifierBaseOptions> & { registry?: unknown },
  role: string,
): Resolved {
  const cached = resolvedCache.get(o);
  if (cached) return cached;
  if (o === null || typeof o !== 'object')
    throw new TypeError(`@geofence/verifier ${role}: options object required`);
  const reg = o.registry as Record<string, unknown> | undefined;
  if (!reg || typeof reg.getByKeyid !== 'function' || typeof reg.getByName !== 'function') {
    throw new TypeError(
      `@geofence/verifier ${role}: option registry must be a Registry (SqliteRegistry, JsonFileRegistry, ...)`,
    );
  }
  const r: Resolved = {
    skewMs: positive('clockSkewSeconds', o.clockSkewSeconds, DEFAULT_CLOCK_SKEW_SECONDS, true) * 1000,
    maxAgeMs: positive('maxMessageAgeSeconds', o.maxMessageAgeSeconds, MAX_SIGNATURE_VALIDITY_SECONDS) * 1000,
    bodyLimit: positive('bodyLimit', o.bodyLimit, DEFAULT_BODY_LIMIT_BYTES),
    requireGeoPolicy: o.requireGeoPolicy ?? true,
    now: o.now ?? (() => new Date()),
  };
  if (o.now !== undefined && typeof o.now !== 'function')
    throw new TypeError(`@geofence/verifier ${role}: option now must be a function`);
  if (o.geoPolicy !== undefined) {
    try {
      evaluateGeoPolicy(o.geoPolicy, {});
    } catch (err) {
      throw new TypeError(
        `@geofence/verifier ${role}: option geoPolicy is invalid: ${(err as Error).message}`,
      );
    }
  }
  resolvedCache.set(o, r);
  return r;
}

function checkNonceStore(o: { nonces?: unknown }, role: string): void {
  const n = o.nonces as Record<string, unknown> | undefined;
  if (!n || typeof n.issue !== 'function' || typeof n.consume !== 'function') {
    throw new TypeError(
      `@geofence/verifier ${role}: option nonces must be a NonceStore (MemoryNonceStore, ...)`,
    );
  }
}

/**
 * Validate collector options (throws TypeError with a clear message).
 * @public
 */
export function validateCollectorOptions(o: CollectorOptions): void {
  resolveBase(o, 'collector');
  checkNonceStore(o, 'collector');
  if (o.onAccept !== undefined && typeof o.onAccept !== 'function') {
    throw new TypeError(
      '@geofence/verifier collector: option onAccept must be a function returning the record id',
    );
  }
}

/**
 * Validate gateway options (throws TypeError with a clear message).
 * @public
 */
export function validateGatewayOptions(o: GatewayOptions): void {
  resolveBase(o, 'gateway');
  for (const k of ['validatePublicKeyHash', 'validateSignature', 'validateGeolocation'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean')
      throw new TypeError(`@geofence/verifier gateway: option ${k} must be a boolean`);
  }
}

/**
 * Validate `GET /nonce` options (throws TypeError with a clear message).
 * @public
 */
export function validateNonceOptions(o: NonceEndpointOptions): void {
  resolveBase({ ...o, maxMessageAgeSeconds: o.maxMessageAgeSeconds }, 'nonce');
  checkNonceStore(o, 'nonce');
}

// ---------------------------------------------------------------------------------------------
// Helpers

function header(req: VerifierRequest, name: string): string | string[] | undefined {
  const h = req.headers;
  if (typeof Headers !== 'undefined' && h instanceof Headers) return h.get(name) ?? undefined;
  const rec = h as Record<string, string | string[] | undefined>;
  const direct = rec[name];
  if (direct !== undefined) return direct;
  for (const key in rec) {
    if (key.length === name.length && key.toLowerCase() === name && Object.hasOwn(rec, key)) return rec[key];
  }
  return undefined;
}

/** Header fields an accepted record keeps (SPEC §6.3 profile): enough to re-verify it offline. */
const KEPT_HEADERS = [
  'content-type',
  'content-digest',
  WORKLOAD_GEO_ID_HEADER,
  'signature-input',
  'signature',
];

function keptHeaders(req: VerifierRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const v = joinedHeader(req, name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** A header that must appear at most once; more than one line is ambiguous → 400. */
function singleHeader(req: VerifierRequest, name: string): string | undefined {
  const v = header(req, name);
  if (v === undefined) return undefined;
  if (Array.isArray(v)) {
    if (v.length === 0) return undefined;
    if (v.length > 1) throw bad(`Duplicate ${name} header`);
    return v[0];
  }
  return v;
}

function joinedHeader(req: VerifierRequest, name: string): string | undefined {
  const v = header(req, name);
  if (v === undefined) return undefined;
  return Array.isArray(v) ? (v.length ? v.join(', ') : undefined) : v;
}

function bad(error: string, details?: Record<string, unknown>, status?: number): GeofenceError {
  return new GeofenceError('request_validation', error, {
    ...(details ? { details } : {}),
    ...(status ? { status } : {}),
  });
}

function hasSignatureHeaders(req: VerifierRequest): boolean {
  return header(req, 'signature') !== undefined || header(req, 'signature-input') !== undefined;
}

function httpMessage(req: VerifierRequest): HttpMessage {
  return { method: req.method, url: req.url, headers: req.headers };
}

/** Map an http-sig failure to the aligned model. Errors from our own callbacks pass through. */
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
  if (fastHasDuplicateJsonKeys(text, json))
    throw bad('Invalid Workload-Geo-ID header', { reason: 'duplicate member names' });
  if (fastValidWorkloadGeoId(json)) {
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

interface ParsedMetrics {
  payload: MetricsPayload;
  raw: Record<string, unknown>;
  geoHeader: WorkloadGeoId | undefined;
}

/** Step 1 — request_validation: method, size, media type, JSON, schema, Content-Digest, Workload-Geo-ID. */
function parseMetricsRequest(req: VerifierRequest, r: Resolved, requireHeaders: boolean): ParsedMetrics {
  if (req.method !== 'POST') throw bad('Method not allowed', { method: req.method }, 405);
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
  if (fastHasDuplicateJsonKeys(text, raw))
    throw bad('Invalid payload structure', { reason: 'duplicate member names' });
  let payload: MetricsPayload;
  if (fastValidPayload(raw)) payload = raw as MetricsPayload;
  else {
    const parsed = metricsPayloadSchema.safeParse(raw);
    if (!parsed.success) throw bad('Invalid payload structure', { issues: issues(parsed.error.issues) });
    payload = parsed.data;
  }
  const digest = joinedHeader(req, 'content-digest');
  if (digest !== undefined) {
    const fast = fastContentDigest(digest, body);
    if (fast === false) throw bad('Content-Digest does not match the body', { reason: 'digest_mismatch' });
    if (fast === undefined) {
      try {
        verifyContentDigest(digest, body);
      } catch (err) {
        throw mapHttpSigError(err);
      }
    }
  }
  const geoHeader = parseWorkloadGeoId(req);
  if (hasSignatureHeaders(req) && geoHeader === undefined) throw bad('Missing workload-geo-id header');
  return { payload, raw: raw as Record<string, unknown>, geoHeader };
}

/** Step 2 — agent_verification. */
async function checkAgent(
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

function pinned(record: AgentRecord): PinnedVerificationKey {
  return { key: recordPublicKey(record), alg: record.alg };
}

/** Step 3 (payload part) — signature_verification. */
function checkPayloadSignature(
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

/** Step 4 — timestamp_proximity for the payload timestamp and the header created/expires. */
function checkTimes(
  r: Resolved,
  now: number,
  payloadTimestamp: string | undefined,
  sig: VerifiedSignature | undefined,
): void {
  const fail = (field: string, reason: string) =>
    new GeofenceError('timestamp_proximity', undefined, { details: { field, reason } });
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
function checkGeo(
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

function checkHeaderNonce(sig: VerifiedSignature | undefined, payload: MetricsPayload): void {
  if (sig && sig.nonce !== payload.nonce) {
    throw new GeofenceError('nonce_validation', undefined, {
      details: { reason: 'Signature-Input nonce differs from the payload nonce' },
    });
  }
}

/** Thrown from the key lookup to stop after the syntax and agent checks (no stack trace to build). */
const SKIP: unique symbol = Symbol('skip-crypto');

async function verifyHeaders(
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

// ---------------------------------------------------------------------------------------------
// Public entry points

/**
 * Collector role: verify a `POST /metrics` request in the order of SPEC §6.4 and store it.
 * Throws {@link GeofenceError} on the first failed step; resolves with the 200 answer.
 * @public
 */
export async function verifyMetrics(
  req: VerifierRequest,
  options: CollectorOptions,
): Promise<MetricsVerdict> {
  const r = resolveBase(options, 'collector');
  const signed = hasSignatureHeaders(req);
  if (options.requireHttpSignature && !signed) throw bad('Missing signature headers');
  const { payload, raw, geoHeader } = parseMetricsRequest(req, r, options.requireHttpSignature === true);
  const checks = ['request_validation', 'agent_verification', 'signature_verification'];
  let record: AgentRecord | undefined;
  let sig: VerifiedSignature | undefined;
  if (signed) {
    sig = await verifyHeaders(
      req,
      r,
      METRICS_COMPONENTS,
      METRICS_PARAMS,
      async (keyid) => {
        record = await checkAgent(options, payload.tpm_public_key_hash, payload.agent_name, keyid);
        return pinned(record);
      },
      true,
    );
  } else {
    record = await checkAgent(options, payload.tpm_public_key_hash, payload.agent_name, undefined);
  }
  if (!record) throw GeofenceError.from(new Error('agent record missing after verification'));
  checkPayloadSignature(raw, payload, record);
  const now = r.now();
  checkTimes(r, now.getTime(), payload.timestamp, sig);
  checks.push('timestamp_proximity');
  checkHeaderNonce(sig, payload);
  const consumed = await options.nonces.consume(record.keyid, payload.nonce);
  if (consumed !== 'ok') {
    throw new GeofenceError('nonce_validation', undefined, {
      details: { agent_name: record.agent_name, reason: consumed },
    });
  }
  checks.push('nonce_validation');
  const geo = checkGeo(options, r, now, record.agent_name, record, payload, geoHeader);
  checks.push('geolocation_policy');
  const sink = options.onAccept ?? defaultSink(options);
  const body = req.rawBody!;
  const recordId = await sink({
    agent_name: record.agent_name,
    keyid: record.keyid,
    received_at: isoString(now),
    payload,
    raw_body: body,
    http_signature: sig
      ? {
          keyid: sig.keyid,
          alg: sig.alg,
          created: sig.created,
          expires: sig.expires,
          components: sig.components,
        }
      : null,
    verdict: { checks, geo },
    headers: keptHeaders(req),
  });
  if (typeof recordId !== 'string' || recordId === '')
    throw GeofenceError.from(new Error('record sink returned no id'));
  return {
    status: 200,
    body: { status: 'success', message: SUCCESS_MESSAGE, record_id: recordId },
    agent: record,
    payload,
    signature: sig,
  };
}

/** `toISOString` of the last millisecond seen: at collector rates several records share one. */
let lastIsoMs = Number.NaN;
let lastIso = '';
function isoString(d: Date): string {
  const ms = d.getTime();
  // An invalid Date has NaN time, never equal: toISOString then throws RangeError as before.
  if (ms !== lastIsoMs) {
    lastIso = d.toISOString();
    lastIsoMs = ms;
  }
  return lastIso;
}

const defaultSinks = new WeakMap<object, ReturnType<typeof createMemoryRecordSink>>();
function defaultSink(options: CollectorOptions) {
  let s = defaultSinks.get(options);
  if (!s) {
    s = createMemoryRecordSink();
    defaultSinks.set(options, s);
  }
  return s.onAccept;
}

/**
 * Gateway role (policy-enforcement mode): check a `POST /metrics` (header presence and syntax, keyid
 * in the allowlist, RFC 9421 signature with Content-Digest, payload signature, timestamps, header vs
 * payload nonce and location, geo policy) or a `GET /nonce` (keyid in the allowlist, signature when
 * present). Never consumes nonces; the collector behind it still runs all of its checks.
 * Same scenario → same status and validation_type as {@link verifyMetrics}.
 * @public
 */
export async function verifyAtGateway(
  req: VerifierRequest,
  options: GatewayOptions,
): Promise<GatewayVerdict> {
  const r = resolveBase(options, 'gateway');
  const vKey = options.validatePublicKeyHash !== false;
  const vSig = options.validateSignature !== false;
  const vGeo = options.validateGeolocation !== false;
  if (req.method === 'GET') return gatewayNonce(req, options, r, vKey, vSig);
  const { payload, raw, geoHeader } = parseMetricsRequest(req, r, true);
  const checks = ['request_validation'];
  let record: AgentRecord | undefined;
  const lookup = async (keyid: string): Promise<PinnedVerificationKey> => {
    if (vKey) {
      record = await checkAgent(options, payload.tpm_public_key_hash, payload.agent_name, keyid);
    } else {
      record = await options.registry.getByKeyid(payload.tpm_public_key_hash);
      if (vSig && (!record || keyid !== payload.tpm_public_key_hash)) {
        throw new GeofenceError('signature_verification', undefined, {
          details: { reason: 'Agent public key not found' },
        });
      }
    }
    return record ? pinned(record) : ({ key: '', alg: 'ecdsa-p256-sha256' } as PinnedVerificationKey);
  };
  const sig = await verifyHeaders(req, r, METRICS_COMPONENTS, METRICS_PARAMS, lookup, vSig);
  if (vKey) checks.push('agent_verification');
  if (vSig) {
    checkPayloadSignature(raw, payload, record!);
    checks.push('signature_verification');
  }
  const now = r.now();
  checkTimes(r, now.getTime(), payload.timestamp, sig);
  checks.push('timestamp_proximity');
  checkHeaderNonce(sig, payload);
  if (vGeo) {
    checkGeo(options, r, now, payload.agent_name, record, payload, geoHeader);
    checks.push('geolocation_policy');
  }
  return { kind: 'metrics', agent: record, payload, signature: sig, checks };
}

function nonceQuery(req: VerifierRequest): string {
  let url: URL;
  try {
    url = new URL(req.url, 'http://localhost');
  } catch {
    throw bad('Invalid request target');
  }
  const all = url.searchParams.getAll('public_key_hash');
  if (all.length === 0 || all[0] === '') throw bad('public_key_hash parameter is required');
  if (all.length > 1) throw bad('public_key_hash parameter must appear once');
  const keyid = all[0]!;
  if (!keyidSchema.safeParse(keyid).success)
    throw bad('Invalid public_key_hash parameter', { expected: '64 lowercase hex characters' });
  return keyid;
}

async function checkNonceRequest(
  req: VerifierRequest,
  o: { registry: VerifierBaseOptions['registry']; requireHttpSignature?: boolean },
  r: Resolved,
  vKey: boolean,
  vSig: boolean,
): Promise<{ record: AgentRecord | undefined; sig: VerifiedSignature | undefined }> {
  if (req.method !== 'GET') throw bad('Method not allowed', { method: req.method }, 405);
  const keyid = nonceQuery(req);
  const signed = hasSignatureHeaders(req);
  if (o.requireHttpSignature && !signed) throw bad('Missing signature headers');
  let record: AgentRecord | undefined;
  let sig: VerifiedSignature | undefined;
  const lookup = async (headerKeyid: string): Promise<PinnedVerificationKey> => {
    if (vKey) record = await checkAgent(o, keyid, undefined, headerKeyid);
    else {
      record = await o.registry.getByKeyid(keyid);
      if (vSig && (!record || headerKeyid !== keyid)) {
        throw new GeofenceError('signature_verification', undefined, {
          details: { reason: 'Agent public key not found' },
        });
      }
    }
    return record ? pinned(record) : ({ key: '', alg: 'ecdsa-p256-sha256' } as PinnedVerificationKey);
  };
  if (signed) {
    sig = await verifyHeaders(req, r, NONCE_COMPONENTS, NONCE_PARAMS, lookup, vSig);
    checkTimes(r, r.now().getTime(), undefined, sig);
  } else if (vKey) {
    record = await checkAgent(o, keyid, undefined, undefined);
  }
  return { record, sig };
}

async function gatewayNonce(
  req: VerifierRequest,
  o: GatewayOptions,
  r: Resolved,
  vKey: boolean,
  vSig: boolean,
): Promise<GatewayVerdict> {
  const { record, sig } = await checkNonceRequest(req, o, r, vKey, vSig);
  const checks = ['request_validation'];
  if (vKey) checks.push('agent_verification');
  if (sig) checks.push('signature_verification', 'timestamp_proximity');
  return { kind: 'nonce', agent: record, payload: undefined, signature: sig, checks };
}

/**
 * `GET /nonce?public_key_hash=<keyid>` at the collector (SPEC §6.1): 400 without the parameter, 403
 * for unknown or inactive agents, verifies the RFC 9421 signature when present (signed requests get
 * nonces from the agent's authenticated pool), then issues a nonce.
 * @public
 */
export async function issueNonce(req: VerifierRequest, options: NonceEndpointOptions): Promise<NonceVerdict> {
  const r = resolveBase(options, 'nonce');
  const { record, sig } = await checkNonceRequest(req, options, r, true, true);
  const issued = await options.nonces.issue(record!.keyid, { authenticated: sig !== undefined });
  return {
    status: 200,
    body: { nonce: issued.nonce, expires_at: issued.expiresAt.toISOString(), expires_in: issued.expiresIn },
    agent: record!,
    authenticated: sig !== undefined,
  };
}
