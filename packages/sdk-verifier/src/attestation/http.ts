/**
 * Framework-agnostic HTTP handlers for the attestation endpoints. The Express and Fastify adapters
 * (and any other framework) only move bytes: parsing, status codes and problem bodies live here.
 */
import { randomUUID } from 'node:crypto';
import { hasDuplicateJsonKeys, type RejectedBy } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { type HttpAnswer, jsonAnswer, problemAnswer } from '../kit/answer.js';
import { resolveMaxSpeed } from '../plausibility.js';
import type { EnrollmentService } from './enrollment.js';
import { appraiseLocationBundle, type LocationAppraisalContext } from './location.js';
import type { AttestationResultSigner } from './result.js';

/**
 * Paths of the attestation endpoints (SPEC §8).
 * @public
 */
export const ATTESTATION_PATHS = Object.freeze({
  enroll: '/enroll',
  complete: '/enroll/:id/complete',
  location: '/attest/location',
  jwks: '/.well-known/jwks.json',
});

/**
 * A request as the handlers see it: the body as raw bytes (or an already parsed JSON value when
 * a framework parsed it) and its content type.
 * @public
 */
export interface AttestationHttpRequest {
  /** Raw body bytes, or the JSON value a body parser produced. */
  body: Uint8Array | string | unknown;
  /** `Content-Type` header (required to be JSON when the body is raw). */
  contentType?: string | undefined;
  /** Request id for the problem body (default: a new UUID). */
  requestId?: string | undefined;
}

/**
 * Options of {@link createAttestationHandlers}.
 * @public
 */
export interface AttestationHandlersOptions {
  /** Enrolment service (omit to not serve `/enroll`). */
  enrollment?: EnrollmentService;
  /** Location appraisal context (omit to not serve `/attest/location`). */
  location?: LocationAppraisalContext;
  /** The result signer whose JWKS is served. */
  signer: AttestationResultSigner;
  /** `rejected_by` of problem bodies (default `collector`). */
  rejectedBy?: RejectedBy;
  /** Maximum body size in bytes (default 1 MiB). */
  bodyLimitBytes?: number;
  /** Called with every rejection (e.g. to log `details` and the internal `cause`). */
  onRejection?: (error: GeofenceError, requestId: string) => void;
}

/**
 * The four endpoint handlers.
 * @public
 */
export interface AttestationHandlers {
  /** `POST /enroll` → 201 challenge. */
  enroll(req: AttestationHttpRequest): Promise<HttpAnswer>;
  /** `POST /enroll/{id}/complete` → 200 with the attestation result. */
  completeEnrollment(id: string, req: AttestationHttpRequest): Promise<HttpAnswer>;
  /** `POST /attest/location` → 200 with the attestation result. */
  attestLocation(req: AttestationHttpRequest): Promise<HttpAnswer>;
  /** `GET /.well-known/jwks.json`. */
  jwks(): HttpAnswer;
  /** Maximum body size the adapters must enforce while reading. */
  readonly bodyLimitBytes: number;
}

function isJsonContentType(ct: string | undefined): boolean {
  if (!ct) return false;
  const type = ct.split(';')[0]?.trim().toLowerCase();
  return type === 'application/json' || (type?.startsWith('application/') === true && type.endsWith('+json'));
}

/**
 * Decodes a request body into a JSON value: bodies already parsed by a framework pass through
 * (their duplicate member names are already lost: mount the handlers before any JSON body parser);
 * raw bodies must be JSON (`415` otherwise), within the size limit (`413`), parse (`400`) and
 * have no duplicate member names in any object (`400`; the same scanner as `POST /metrics`, so
 * no two parsers can read one body differently).
 */
export function decodeJsonBody(req: AttestationHttpRequest, limit: number): unknown {
  const raw = req.body;
  if (!(raw instanceof Uint8Array) && typeof raw !== 'string') {
    if (raw === undefined || raw === null)
      throw new GeofenceError('request_validation', 'Request body is required');
    return raw;
  }
  if (!isJsonContentType(req.contentType)) {
    throw new GeofenceError('request_validation', 'Content-Type must be application/json', { status: 415 });
  }
  const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  if (bytes.byteLength > limit) {
    throw new GeofenceError('request_validation', 'Request body too large', {
      status: 413,
      details: { limit_bytes: limit },
    });
  }
  let text: string;
  let value: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    value = JSON.parse(text);
  } catch {
    throw new GeofenceError('request_validation', 'Request body is not valid JSON');
  }
  if (hasDuplicateJsonKeys(text, value)) {
    throw new GeofenceError('request_validation', 'Request body has duplicate member names', {
      details: { reason: 'duplicate member names' },
    });
  }
  return value;
}

/**
 * Builds the handlers. Every rejection becomes an `application/problem+json` response in the
 * aligned error model (SPEC §7); unexpected errors become an opaque `internal` problem.
 *
 * @example
 * ```ts
 * const h = createAttestationHandlers({ enrollment, location, signer });
 * const res = await h.enroll({ body: rawBytes, contentType: 'application/json' });
 * ```
 * @public
 */
export function createAttestationHandlers(options: AttestationHandlersOptions): AttestationHandlers {
  const limit = options.bodyLimitBytes ?? 1024 * 1024;
  const rejectedBy = options.rejectedBy ?? 'collector';
  // A bad limit is a configuration error: refuse it now rather than answer every request with 500.
  if (options.location) resolveMaxSpeed(options.location.maxSpeedKmh);

  async function run(
    req: AttestationHttpRequest,
    status: number,
    fn: (body: unknown) => Promise<unknown>,
  ): Promise<HttpAnswer> {
    const requestId = req.requestId ?? randomUUID();
    try {
      const body = await fn(decodeJsonBody(req, limit));
      return jsonAnswer(status, body);
    } catch (err) {
      const ge = GeofenceError.from(err);
      options.onRejection?.(ge, requestId);
      return problemAnswer(ge, rejectedBy, requestId);
    }
  }

  const notServed = (what: string) => async () => {
    throw new GeofenceError('request_validation', `${what} is not enabled on this server`, { status: 405 });
  };

  const { enrollment, location } = options;
  return {
    bodyLimitBytes: limit,
    enroll: (req) => run(req, 201, enrollment ? (b) => enrollment.start(b) : notServed('enrolment')),
    completeEnrollment: (id, req) =>
      run(req, 200, enrollment ? (b) => enrollment.complete(id, b) : notServed('enrolment')),
    attestLocation: (req) =>
      run(
        req,
        200,
        location ? (b) => appraiseLocationBundle(b, location) : notServed('location attestation'),
      ),
    jwks: () => ({
      status: 200,
      headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' },
      body: options.signer.jwks(),
    }),
  };
}
