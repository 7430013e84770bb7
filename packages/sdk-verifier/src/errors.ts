/**
 * The verifier's rejection: {@link GeofenceError}, thrown by every verification step and turned into
 * an `application/problem+json` body (SPEC §7). The problem shape, the closed `validation_type` set
 * and their statuses are the wire contract of `@geofence/protocol`.
 */
import {
  isProblem,
  isValidationType,
  type Problem,
  problemTypeUri,
  type RejectedBy,
  VALIDATION_TYPE_INFO,
  VALIDATION_TYPE_STATUSES,
  type ValidationType,
} from '@geofence/protocol';

/**
 * Options of {@link GeofenceError}.
 * @public
 */
export interface GeofenceErrorOptions {
  /** HTTP status; defaults to the validation type's status. Must be one SPEC §7 allows for the type. */
  status?: number;
  /** Check-specific details (put no secrets here: they go into the response body). */
  details?: Record<string, unknown>;
  /** Seconds for a `Retry-After` header (rate_limit, upstream 503). */
  retryAfter?: number;
  /** Underlying cause, kept for logs; never serialised into the problem body. */
  cause?: unknown;
}

/**
 * A rejection in the aligned error model. Thrown by every verification step; middleware turns it
 * into an `application/problem+json` response with {@link GeofenceError.toProblem}.
 *
 * @example
 * ```ts
 * throw new GeofenceError('agent_verification', 'Agent is not active', { details: { agent_name } });
 * ```
 * @public
 */
export class GeofenceError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /** Which check failed. */
  readonly validationType: ValidationType;
  /** Human-readable message (the problem's `error` member). */
  readonly error: string;
  /** Check-specific details. */
  readonly details: Record<string, unknown> | undefined;
  /** Seconds for `Retry-After`, when relevant. */
  readonly retryAfter: number | undefined;

  /**
   * @param validationType - which check failed
   * @param error - message; defaults to the type's typical message
   * @param options - status, details, retryAfter, cause
   */
  constructor(validationType: ValidationType, error?: string, options: GeofenceErrorOptions = {}) {
    if (!isValidationType(validationType))
      throw new TypeError(`unknown validation type: ${String(validationType)}`);
    const info = VALIDATION_TYPE_INFO[validationType];
    const message = error ?? info.error;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GeofenceError';
    const status = options.status ?? info.status;
    if (!VALIDATION_TYPE_STATUSES[validationType].includes(status)) {
      throw new TypeError(`status ${status} is not allowed for validation type ${validationType}`);
    }
    this.status = status;
    this.validationType = validationType;
    this.error = message;
    this.details = options.details;
    this.retryAfter = options.retryAfter;
  }

  /** The problem `type` URN. */
  get type(): string {
    return problemTypeUri(this.validationType);
  }

  /**
   * The RFC 9457 body for this error.
   * @param context - who rejected the request, its id and (for tests) the clock
   */
  toProblem(context: { rejectedBy: RejectedBy; requestId: string; now?: Date }): Problem {
    const problem: Problem = {
      type: this.type,
      title: VALIDATION_TYPE_INFO[this.validationType].title,
      status: this.status,
      error: this.error,
      rejected_by: context.rejectedBy,
      validation_type: this.validationType,
      timestamp: (context.now ?? new Date()).toISOString(),
      request_id: context.requestId,
    };
    if (this.details !== undefined) problem.details = this.details;
    return problem;
  }

  /**
   * Wrap anything thrown into a GeofenceError: GeofenceErrors pass through, everything else becomes
   * an opaque `internal` error (the original is kept as `cause` for logging, never sent to clients).
   */
  static from(err: unknown): GeofenceError {
    if (err instanceof GeofenceError) return err;
    return new GeofenceError('internal', undefined, { cause: err });
  }
}

/**
 * Rebuild a {@link GeofenceError} from a received problem body (for clients such as the agent SDK).
 * Returns `undefined` when `body` is not a problem.
 * @public
 */
export function geofenceErrorFromProblem(body: unknown): GeofenceError | undefined {
  if (!isProblem(body)) return undefined;
  const allowed = VALIDATION_TYPE_STATUSES[body.validation_type].includes(body.status);
  return new GeofenceError(body.validation_type, body.error, {
    ...(allowed ? { status: body.status } : {}),
    ...(body.details ? { details: body.details } : {}),
  });
}
