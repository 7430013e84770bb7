/**
 * The roles of the SPEC §6.4 pipeline, framework-agnostic: the collector (`verifyMetrics`), the
 * enforcing gateway (`verifyAtGateway`) and `GET /nonce` (`issueNonce`). They compose the steps of
 * steps.ts over the request view of request-view.ts with the options of options.ts; each step throws a
 * {@link GeofenceError} of its validation type and the first failure wins.
 *
 * The RFC 9421 check is a single `verifyRequest` call of `@geofence/http-sig` whose key lookup runs the
 * agent checks: header syntax errors surface before (step 1), agent errors inside (step 2), and
 * cryptographic errors after the lookup (step 3) — the SPEC order without parsing the headers twice.
 */
import { createHash } from 'node:crypto';
import type { PinnedVerificationKey, VerifiedSignature } from '@geofence/http-sig';
import { keyidSchema } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { checkMovement } from '../plausibility.js';
import type { NonceStore } from '../storage/nonce-store.js';
import type { AgentRecord } from '../storage/registry.js';
import { type Resolved, resolveBase } from './options.js';
import { createMemoryRecordSink } from './records.js';
import { bad, hasSignatureHeaders, keptHeaders } from './request-view.js';
import {
  checkAgent,
  checkGeo,
  checkHeaderNonce,
  checkPayloadSignature,
  checkTimes,
  METRICS_COMPONENTS,
  METRICS_PARAMS,
  NONCE_COMPONENTS,
  NONCE_PARAMS,
  parseMetricsRequest,
  pinned,
  SUCCESS_MESSAGE,
  verifyHeaders,
} from './steps.js';
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
  const reading = payload.location;
  if (reading && r.maxSpeedKmh !== undefined) {
    const fix = reading.fix_time === undefined ? Number.NaN : Date.parse(reading.fix_time);
    await checkMovement(
      options.nonces,
      record.keyid,
      record.agent_name,
      {
        lat: reading.lat,
        lon: reading.lon,
        accuracy: reading.accuracy ?? 0,
        // A reading without a fix time is taken as measured when it arrived.
        at: Number.isFinite(fix) ? fix : now.getTime(),
      },
      r.maxSpeedKmh,
    );
  }
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
    verdict: {
      checks,
      geo,
      ...(reading?.accuracy === undefined ? {} : { accuracy_m: reading.accuracy }),
      ...(reading?.fix_time === undefined ? {} : { fix_time: reading.fix_time }),
    },
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
 * A signed `GET /nonce` is single-use (SPEC §16): otherwise one captured request (the gateway header
 * log keeps whole ones) could be replayed for its whole validity, each replay issuing a nonce into the
 * agent's authenticated pool and evicting the oldest one the agent holds. A repeat is refused rather
 * than answered without a nonce: the agent SDK signs every request afresh (a retry too), so only a
 * replayer ever sends one twice, and a refusal tells an operator so. The mark lasts as long as the
 * request could be accepted at all (its `expires`, bounded by the message age, plus the clock skew);
 * it lives in the nonce store, so every replica sharing the store sees it.
 */
async function claimSignedNonceRequest(
  nonces: NonceStore,
  keyid: string,
  sig: VerifiedSignature,
  r: Resolved,
): Promise<void> {
  // checkTimes made sure both are present.
  const until = Math.min(sig.expires! * 1000, sig.created! * 1000 + r.maxAgeMs) + r.skewMs;
  const requestId = createHash('sha256').update(sig.signature).digest('base64url');
  if (!(await nonces.claimRequest(keyid, requestId, new Date(until)))) {
    throw new GeofenceError('nonce_validation', undefined, {
      details: { reason: 'this signed nonce request was already used' },
    });
  }
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
  if (sig) await claimSignedNonceRequest(options.nonces, record!.keyid, sig, r);
  const issued = await options.nonces.issue(record!.keyid, { authenticated: sig !== undefined });
  return {
    status: 200,
    body: { nonce: issued.nonce, expires_at: issued.expiresAt.toISOString(), expires_in: issued.expiresIn },
    agent: record!,
    authenticated: sig !== undefined,
  };
}
