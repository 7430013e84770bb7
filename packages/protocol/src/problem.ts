/**
 * The problem shape of the aligned error model (SPEC §7): every rejection from any component is an
 * RFC 9457 `application/problem+json` body with the same members, so the same scenario looks the
 * same whether the gateway or the collector rejected it. Only `rejected_by` differs. The verifier
 * throws and serialises these (`GeofenceError`); the agent recognises them (`isProblem`).
 */

/**
 * The closed set of validation types, in SPEC §6.4 pipeline order followed by the non-pipeline ones.
 * @public
 */
export const VALIDATION_TYPES = [
  'request_validation',
  'agent_verification',
  'signature_verification',
  'timestamp_proximity',
  'nonce_validation',
  'geolocation_policy',
  'attestation',
  'rate_limit',
  'upstream',
  'internal',
] as const;

/**
 * One of {@link VALIDATION_TYPES}: which check rejected a request.
 * @public
 */
export type ValidationType = (typeof VALIDATION_TYPES)[number];

/**
 * Static facts about each validation type: default HTTP status, problem `title`, and the typical
 * `error` message. The title never carries request data, so it is safe to show to anyone.
 * @public
 */
export const VALIDATION_TYPE_INFO: Readonly<
  Record<ValidationType, { readonly status: number; readonly title: string; readonly error: string }>
> = Object.freeze({
  request_validation: { status: 400, title: 'Invalid request', error: 'Invalid payload structure' },
  agent_verification: {
    status: 403,
    title: 'Agent verification failed',
    error: 'Agent not found in allowlist',
  },
  signature_verification: {
    status: 401,
    title: 'Signature verification failed',
    error: 'Signature verification failed',
  },
  timestamp_proximity: {
    status: 401,
    title: 'Timestamp outside allowed window',
    error: 'Request timestamp outside allowed window',
  },
  nonce_validation: {
    status: 401,
    title: 'Nonce validation failed',
    error: 'Invalid or expired nonce for this agent',
  },
  geolocation_policy: {
    status: 403,
    title: 'Geolocation verification failed',
    error: 'Geolocation verification failed',
  },
  attestation: {
    status: 403,
    title: 'Attestation evidence rejected',
    error: 'Attestation evidence rejected',
  },
  rate_limit: { status: 429, title: 'Rate limit exceeded', error: 'Rate limit exceeded' },
  upstream: { status: 502, title: 'Collector unavailable', error: 'Collector unavailable' },
  internal: { status: 500, title: 'Internal error', error: 'Internal error' },
});

/**
 * The HTTP statuses each validation type may carry (SPEC §7 table), its default status included.
 * @public
 */
export const VALIDATION_TYPE_STATUSES: Readonly<Record<ValidationType, readonly number[]>> = Object.freeze({
  request_validation: [400, 404, 405, 413, 415],
  agent_verification: [403],
  signature_verification: [401],
  timestamp_proximity: [401],
  nonce_validation: [401],
  geolocation_policy: [403],
  attestation: [403],
  rate_limit: [429],
  upstream: [502, 503, 504],
  internal: [500],
});

/**
 * Which component rejected a request (`rejected_by` member).
 * @public
 */
export type RejectedBy = 'gateway' | 'collector' | (string & {});

/**
 * The RFC 9457 body every component answers with on rejection (SPEC §7).
 * @public
 */
export interface Problem {
  /** `urn:geofence:error:<validation_type>`. */
  type: string;
  /** Short, static summary of the validation type. */
  title: string;
  /** HTTP status code, repeated in the body. */
  status: number;
  /** Human-readable message (for example "Agent not found in allowlist"). */
  error: string;
  /** Which component rejected the request. */
  rejected_by: RejectedBy;
  /** Which check rejected the request. */
  validation_type: ValidationType;
  /** Check-specific details (never secrets). */
  details?: Record<string, unknown>;
  /** ISO 8601 time of the rejection. */
  timestamp: string;
  /** Correlation id of the request. */
  request_id: string;
}

/**
 * Media type of problem responses.
 * @public
 */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * The `type` URN of a validation type: `urn:geofence:error:<validation_type>`.
 * @public
 */
export function problemTypeUri(validationType: ValidationType): string {
  return `urn:geofence:error:${validationType}`;
}

/**
 * Whether `value` is one of {@link VALIDATION_TYPES}.
 * @public
 */
export function isValidationType(value: unknown): value is ValidationType {
  return typeof value === 'string' && (VALIDATION_TYPES as readonly string[]).includes(value);
}

/**
 * Whether `body` is a problem in the aligned format (structural check of the required members).
 * @public
 */
export function isProblem(body: unknown): body is Problem {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  return (
    isValidationType(b.validation_type) &&
    b.type === problemTypeUri(b.validation_type) &&
    typeof b.title === 'string' &&
    typeof b.status === 'number' &&
    Number.isInteger(b.status) &&
    typeof b.error === 'string' &&
    typeof b.rejected_by === 'string' &&
    typeof b.timestamp === 'string' &&
    typeof b.request_id === 'string' &&
    (b.details === undefined || (typeof b.details === 'object' && b.details !== null))
  );
}
