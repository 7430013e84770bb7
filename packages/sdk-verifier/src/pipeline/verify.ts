/**
 * The roles of the SPEC §6.4 pipeline, framework-agnostic: the collector
 * (`createCollectorVerifier`), the enforcing gateway (`createGatewayVerifier`) and `GET /nonce`
 * (`createNonceIssuer`). Each factory validates its options once and returns an object that owns
 * what it resolved (fastify's "compile where the route lives"). They compose the steps of
 * steps.ts over the request view of request-view.ts with the options of options.ts; each step throws a
 * {@link GeofenceError} of its validation type and the first failure wins.
 *
 * The RFC 9421 check is a single `verifyRequest` call of `@geofence/http-sig` whose key lookup runs the
 * agent checks: header syntax errors surface before (step 1), agent errors inside (step 2), and
 * cryptographic errors after the lookup (step 3) — the SPEC order without parsing the headers twice.
 */
import { createHash } from 'node:crypto';
import type { PinnedVerificationKey, VerifiedSignature } from '@geofence/http-sig';
import { compileSchemaCheck, keyidSchema, NONCE_COUNT_PARAMETER } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { checkMovement } from '../plausibility.js';
import { createMemoryRecordSink } from '../storage/memory-record-store.js';
import type { NonceStore } from '../storage/nonce-store.js';
import type { AgentRecord } from '../storage/registry.js';
import {
  type Resolved,
  resolveCollectorOptions,
  resolveGatewayOptions,
  resolveNonceOptions,
} from './options.js';
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
 * The collector role built once from its options: {@link CollectorVerifier.verify} checks a
 * `POST /metrics` request in the order of SPEC §6.4 and stores it.
 * @public
 */
export interface CollectorVerifier {
  /** Throws {@link GeofenceError} on the first failed step; resolves with the 200 answer. */
  verify(req: VerifierRequest): Promise<MetricsVerdict>;
}

/**
 * Build the collector role: validates `options` once (TypeError with a clear message) and keeps
 * what it resolved, its default record sink and its time formatting for every request it verifies.
 * @public
 */
export function createCollectorVerifier(options: CollectorOptions): CollectorVerifier {
  const r = resolveCollectorOptions(options);
  const sink = options.onAccept ?? createMemoryRecordSink().onAccept;
  const isoString = createIsoClock();
  return {
    async verify(req) {
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
      const body = req.rawBody!;
      const recordId = await sink({
        agentName: record.agent_name,
        keyid: record.keyid,
        receivedAt: isoString(now),
        payload,
        rawBody: body,
        httpSignature: sig
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
    },
  };
}

/**
 * Collector role, one request: `createCollectorVerifier(options).verify(req)`. Validates the options
 * on every call and keeps no state between calls (the default record sink is new each time): servers
 * build the verifier once with {@link createCollectorVerifier}, as the middleware does.
 * @public
 */
export function verifyMetrics(req: VerifierRequest, options: CollectorOptions): Promise<MetricsVerdict> {
  return createCollectorVerifier(options).verify(req);
}

/**
 * `toISOString` of the last millisecond seen: at collector rates several records share one.
 */
function createIsoClock(): (d: Date) => string {
  let lastMs = Number.NaN;
  let last = '';
  return (d) => {
    const ms = d.getTime();
    // An invalid Date has NaN time, never equal: toISOString then throws RangeError as before.
    if (ms !== lastMs) {
      last = d.toISOString();
      lastMs = ms;
    }
    return last;
  };
}

/**
 * The gateway role (policy-enforcement mode) built once from its options.
 * @public
 */
export interface GatewayVerifier {
  /**
   * Check a `POST /metrics` (header presence and syntax, keyid in the allowlist, RFC 9421 signature
   * with Content-Digest, payload signature, timestamps, header vs payload nonce and location, geo
   * policy) or a `GET /nonce` (keyid in the allowlist, signature when present). Never consumes
   * nonces; the collector behind it still runs all of its checks. Same scenario → same status and
   * validation_type as the collector.
   */
  verify(req: VerifierRequest): Promise<GatewayVerdict>;
}

/**
 * Build the gateway role: validates `options` once (TypeError with a clear message).
 * @public
 */
export function createGatewayVerifier(options: GatewayOptions): GatewayVerifier {
  const r = resolveGatewayOptions(options);
  const vKey = options.validatePublicKeyHash !== false;
  const vSig = options.validateSignature !== false;
  const vGeo = options.validateGeolocation !== false;
  return {
    async verify(req) {
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
    },
  };
}

/**
 * Gateway role, one request: `createGatewayVerifier(options).verify(req)` (validates the options on
 * every call; servers build the verifier once).
 * @public
 */
export function verifyAtGateway(req: VerifierRequest, options: GatewayOptions): Promise<GatewayVerdict> {
  return createGatewayVerifier(options).verify(req);
}

/** The `GET /nonce` query: the agent's keyid and, for a batch (SPEC §16), the `count` asked for. */
interface NonceQuery {
  keyid: string;
  count: number | undefined;
}

/** `keyidSchema`, compiled: every `GET /nonce` checks its parameter, and zod allocates per call. */
const isKeyid = compileSchemaCheck(keyidSchema);

function singleParameter(url: URL, name: string): string | undefined {
  const all = url.searchParams.getAll(name);
  if (all.length > 1) throw bad(`${name} parameter must appear once`);
  return all[0];
}

function nonceQuery(req: VerifierRequest, maxBatch: number): NonceQuery {
  let url: URL;
  try {
    url = new URL(req.url, 'http://localhost');
  } catch {
    throw bad('Invalid request target');
  }
  const keyid = singleParameter(url, 'public_key_hash');
  if (keyid === undefined || keyid === '') throw bad('public_key_hash parameter is required');
  if (!isKeyid(keyid) && !keyidSchema.safeParse(keyid).success)
    throw bad('Invalid public_key_hash parameter', { expected: '64 lowercase hex characters' });
  const rawCount = singleParameter(url, NONCE_COUNT_PARAMETER);
  if (rawCount === undefined) return { keyid, count: undefined };
  const count = /^[1-9][0-9]{0,3}$/.test(rawCount) ? Number(rawCount) : Number.NaN;
  if (!(count >= 1 && count <= maxBatch)) {
    throw bad('Invalid count parameter', { expected: `an integer in 1..${maxBatch}` });
  }
  return { keyid, count };
}

async function checkNonceRequest(
  req: VerifierRequest,
  o: { registry: VerifierBaseOptions['registry']; requireHttpSignature?: boolean },
  r: Resolved,
  vKey: boolean,
  vSig: boolean,
): Promise<{
  record: AgentRecord | undefined;
  sig: VerifiedSignature | undefined;
  count: number | undefined;
}> {
  if (req.method !== 'GET') throw bad('Method not allowed', { method: req.method }, 405);
  const { keyid, count } = nonceQuery(req, r.maxNonceBatch);
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
  return { record, sig, count };
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
 * `GET /nonce` at the collector, built once from its options.
 * @public
 */
export interface NonceIssuer {
  /**
   * `GET /nonce?public_key_hash=<keyid>` (SPEC §6.1): 400 without the parameter, 403 for unknown or
   * inactive agents, verifies the RFC 9421 signature when present (signed requests get nonces from
   * the agent's authenticated pool, and are single-use), then issues a nonce.
   */
  issue(req: VerifierRequest): Promise<NonceVerdict>;
}

/**
 * Build the `GET /nonce` role: validates `options` once (TypeError with a clear message).
 * @public
 */
export function createNonceIssuer(options: NonceEndpointOptions): NonceIssuer {
  const r = resolveNonceOptions(options);
  return {
    async issue(req) {
      const { record, sig, count } = await checkNonceRequest(req, options, r, true, true);
      // A batch multiplies what one request obtains, so only the agent itself may ask for one: an
      // anonymous caller gets one nonce per request, as every rate limit assumes.
      if (count !== undefined && !sig) {
        throw bad('count needs a signed request', {
          reason: 'nonce batches are issued to signed requests only',
        });
      }
      if (sig) await claimSignedNonceRequest(options.nonces, record!.keyid, sig, r);
      const authenticated = sig !== undefined;
      if (count === undefined) {
        const issued = await options.nonces.issue(record!.keyid, { authenticated });
        return {
          status: 200,
          body: {
            nonce: issued.nonce,
            expires_at: issued.expiresAt.toISOString(),
            expires_in: issued.expiresIn,
          },
          agent: record!,
          authenticated,
        };
      }
      // In order, so the pool evicts (when full) the agent's oldest nonces, never one of this batch.
      const nonces: Array<{ nonce: string; expires_at: string }> = [];
      let expiresIn = 0;
      for (let i = 0; i < count; i++) {
        const issued = await options.nonces.issue(record!.keyid, { authenticated });
        nonces.push({ nonce: issued.nonce, expires_at: issued.expiresAt.toISOString() });
        expiresIn = issued.expiresIn;
      }
      return { status: 200, body: { nonces, expires_in: expiresIn }, agent: record!, authenticated };
    },
  };
}

/**
 * `GET /nonce`, one request: `createNonceIssuer(options).issue(req)` (validates the options on every
 * call; servers build the issuer once).
 * @public
 */
export function issueNonce(req: VerifierRequest, options: NonceEndpointOptions): Promise<NonceVerdict> {
  return createNonceIssuer(options).issue(req);
}
