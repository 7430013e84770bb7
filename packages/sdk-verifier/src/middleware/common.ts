/**
 * The options every endpoint accepts besides its role's verification options (Express middleware,
 * Fastify plugin and the framework-neutral endpoints alike).
 */
import type { RejectedBy } from '@geofence/protocol';
import type { GeofenceError } from '../errors.js';
import type { VerifierRequest } from '../pipeline/types.js';

/**
 * Options every middleware accepts besides its role's verification options.
 * @public
 */
export interface MiddlewareOptions {
  /** `rejected_by` of problems (default: the role: `collector` or `gateway`). */
  rejectedBy?: RejectedBy;
  /**
   * Called before verification; throw a {@link GeofenceError} (for example `rate_limit` with
   * `retryAfter`) to reject the request.
   */
  beforeVerify?: (req: VerifierRequest) => void | Promise<void>;
  /**
   * Called with every rejection (for logging/metrics). Internal errors keep their cause here only.
   * `req.rawBody` is the refused body when it had been read (Express and Fastify alike): unverified,
   * attacker-chosen bytes. `requestId` is ours (see {@link requestIdOf}); `clientRequestId` is the
   * client's own `X-Request-Id`, when it sent a well-formed one.
   */
  onReject?: (
    error: GeofenceError,
    req: VerifierRequest,
    requestId: string,
    clientRequestId: string | undefined,
  ) => void;
}

/** Check the options object shape early, with a clear message. */
export function checkMiddlewareOptions(o: MiddlewareOptions, role: string): void {
  if (o.beforeVerify !== undefined && typeof o.beforeVerify !== 'function') {
    throw new TypeError(`@geofence/verifier ${role}: option beforeVerify must be a function`);
  }
  if (o.onReject !== undefined && typeof o.onReject !== 'function') {
    throw new TypeError(`@geofence/verifier ${role}: option onReject must be a function`);
  }
  if (o.rejectedBy !== undefined && (typeof o.rejectedBy !== 'string' || o.rejectedBy === '')) {
    throw new TypeError(`@geofence/verifier ${role}: option rejectedBy must be a non-empty string`);
  }
}
