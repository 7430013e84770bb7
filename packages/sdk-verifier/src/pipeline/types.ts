/**
 * Types of the framework-agnostic verification pipeline.
 */
import type { HeaderFields, VerifiedSignature } from '@geofence/http-sig';
import type { MetricsPayload, NonceBatchResponse, NonceResponse } from '@geofence/protocol';
import type { GeoPolicy } from '../geo.js';
import type { NonceStore } from '../storage/nonce-store.js';
import type { AcceptedRecord } from '../storage/record-store.js';
import type { AgentRecord, Registry } from '../storage/registry.js';

/**
 * A request as the pipeline sees it, independent of the HTTP framework.
 * @public
 */
export interface VerifierRequest {
  /** HTTP method. */
  method: string;
  /** Request target in origin form as the client sent it (`/metrics`, `/nonce?public_key_hash=…`). */
  url: string;
  /** Header fields (Node's `headers`/`headersDistinct`, any-case record, or WHATWG `Headers`). */
  headers: HeaderFields;
  /** The body bytes exactly as received (needed for `POST /metrics`). */
  rawBody?: Uint8Array;
  /**
   * The header lines as received, `[name, value, name, value, …]` (Node's `rawHeaders`). `headers`
   * keeps only the first of repeated `Content-Type` lines, so a second, different line — which another
   * HTTP implementation may read instead — is only visible here. Adapters pass it; when absent the
   * repeated-header check relies on what `headers` shows.
   */
  rawHeaders?: readonly string[];
}

/**
 * Options shared by every role.
 * @public
 */
export interface VerifierBaseOptions {
  /** Allowlist of agents. */
  registry: Registry;
  /** Global geo policy, evaluated in addition to each agent's own (both must allow). */
  geoPolicy?: GeoPolicy;
  /**
   * Refuse agents when neither their policy nor the global one has allow entries or fences
   * (default true: an agent without any geographic policy is not "inside an approved area").
   */
  requireGeoPolicy?: boolean;
  /** Accepted clock skew in seconds (default 60, `CLOCK_SKEW_SECONDS`). */
  clockSkewSeconds?: number;
  /** Maximum age of payload `timestamp` and header `created`, in seconds (default 300). */
  maxMessageAgeSeconds?: number;
  /** Body size limit in bytes (default 1 MiB); larger bodies get 413. */
  bodyLimit?: number;
  /** Clock (tests). */
  now?: () => Date;
}

/**
 * Stores an accepted record durably and returns its id (for example a record store's `insert`).
 * @public
 */
export type RecordSink = (record: AcceptedRecord) => string | Promise<string>;

/**
 * Options of the collector role (`POST /metrics`).
 * @public
 */
export interface CollectorOptions extends VerifierBaseOptions {
  /** Nonce store (shared with the `GET /nonce` endpoint). */
  nonces: NonceStore;
  /** Record sink; default: an in-memory sink (see {@link createMemoryRecordSink}). */
  onAccept?: RecordSink;
  /**
   * Require the RFC 9421 headers (default false: a gateway in policy-enforcement mode strips them
   * before forwarding; the payload signature still binds every field). When present they are always
   * verified.
   */
  requireHttpSignature?: boolean;
  /**
   * Movement plausibility (SPEC §5.3): a reported point farther from the agent's last accepted one
   * than it could have travelled at this speed — distance minus both accuracy radii, over the time
   * between the fixes — fails `geolocation_policy` with `details.check: "implausible_movement"`.
   * The last position lives in `nonces`, so replicas sharing the store share it. Default
   * {@link DEFAULT_MAX_SPEED_KMH} (1000 km/h); `false` disables the check.
   */
  maxSpeedKmh?: number | false;
}

/**
 * Options of the gateway role (policy-enforcement mode, SPEC §6.4).
 * @public
 */
export interface GatewayOptions extends VerifierBaseOptions {
  /** Check keyid in the allowlist, agent name and status (default true, `GATEWAY_VALIDATE_PUBLIC_KEY_HASH`). */
  validatePublicKeyHash?: boolean;
  /** Check the RFC 9421 and payload signatures (default true, `GATEWAY_VALIDATE_SIGNATURE`). */
  validateSignature?: boolean;
  /** Check the geo policy and Workload-Geo-ID consistency (default true, `GATEWAY_VALIDATE_GEOLOCATION`). */
  validateGeolocation?: boolean;
}

/**
 * Options of `GET /nonce` (collector).
 * @public
 */
export interface NonceEndpointOptions {
  /** Allowlist of agents. */
  registry: Registry;
  /** Nonce store. */
  nonces: NonceStore;
  /** Require a signed request (default false: verified when present). */
  requireHttpSignature?: boolean;
  /** Accepted clock skew in seconds (default 60). */
  clockSkewSeconds?: number;
  /** Maximum age of header `created`, in seconds (default 300). */
  maxMessageAgeSeconds?: number;
  /**
   * Largest `count` of one `GET /nonce?…&count=n` (SPEC §16); set it to the store's
   * `maxOutstanding` (`NONCE_MAX_OUTSTANDING`, default 10) so a batch never evicts itself.
   */
  maxNonceBatch?: number;
  /** Clock (tests). */
  now?: () => Date;
}

/**
 * Successful `POST /metrics` at the collector.
 * @public
 */
export interface MetricsVerdict {
  /** Always 200. */
  status: 200;
  /** The response body. */
  body: { status: 'success'; message: string; record_id: string };
  /** The agent's registry record. */
  agent: AgentRecord;
  /** The verified payload. */
  payload: MetricsPayload;
  /** The verified header signature, when present. */
  signature: VerifiedSignature | undefined;
}

/**
 * Successful `GET /nonce`.
 * @public
 */
export interface NonceVerdict {
  /** Always 200. */
  status: 200;
  /** The response body: one nonce (SPEC §6.1), or a batch when the request asked for `count` (§16). */
  body: NonceResponse | NonceBatchResponse;
  /** The agent's registry record. */
  agent: AgentRecord;
  /** Whether the request was signed by the agent (its nonce went to the authenticated pool). */
  authenticated: boolean;
}

/**
 * A request the gateway lets through (to be forwarded without the signature headers).
 * @public
 */
export interface GatewayVerdict {
  /** `metrics` for `POST`, `nonce` for `GET`. */
  kind: 'metrics' | 'nonce';
  /** The agent's registry record (undefined only when `validatePublicKeyHash` is off and the keyid is unknown). */
  agent: AgentRecord | undefined;
  /** The payload (metrics requests). */
  payload: MetricsPayload | undefined;
  /** The verified header signature, when checked. */
  signature: VerifiedSignature | undefined;
  /** Checks that ran. */
  checks: string[];
}
