/**
 * Pieces shared by the Express middleware and the Fastify plugin.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RejectedBy } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import type { VerifierRequest } from '../pipeline/types.js';
import { problemHeaders } from '../problem-headers.js';

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

/**
 * The one problem writer: answers `err` as RFC 9457 `application/problem+json` (SPEC §7) with its
 * status, `Retry-After` when it has one, `Cache-Control: no-store`, `X-Request-Id` and, after a 413,
 * `Connection: close` (the unread body is not drained). Destroys the socket when headers were
 * already sent, since no valid answer is possible then.
 * @public
 */
export function sendProblem(
  res: ServerResponse,
  err: GeofenceError,
  rejectedBy: RejectedBy,
  requestId: string,
): void {
  const body = JSON.stringify(err.toProblem({ rejectedBy, requestId }));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = err.status;
  for (const [name, value] of Object.entries(problemHeaders(err))) res.setHeader(name, value);
  res.setHeader('x-request-id', requestId);
  if (err.status === 413) res.setHeader('connection', 'close');
  res.end(body);
}

/** Answer with JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown, requestId: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('x-request-id', requestId);
  res.end(JSON.stringify(body));
}

/** Headers an enforcing gateway removes from `POST /metrics` before forwarding (SPEC §6.4). */
export const GATEWAY_STRIPPED_HEADERS = Object.freeze(['signature', 'signature-input', 'workload-geo-id']);

const NOTHING_STRIPPED: readonly string[] = Object.freeze([]);

/**
 * The one rule of what an enforcing gateway removes before forwarding a request: the signature
 * headers of `POST /metrics` (SPEC §6.4), and nothing else. A signed `GET /nonce` keeps its
 * signature (SPEC §16): the collector needs it to issue from the agent's authenticated pool, which
 * anonymous callers cannot evict; stripping it would put every nonce in the anonymous pool.
 * @public
 */
export function headersStrippedByGateway(method: string, path: string): readonly string[] {
  const bare = path.split('?', 1)[0]!.replace(/\/+$/, '');
  return method.toUpperCase() === 'POST' && bare.endsWith('/metrics')
    ? GATEWAY_STRIPPED_HEADERS
    : NOTHING_STRIPPED;
}

/** Remove what {@link headersStrippedByGateway} names for `req` (parsed and raw header forms). */
export function stripGatewayHeaders(req: IncomingMessage, path: string): void {
  const names = headersStrippedByGateway(req.method ?? 'GET', path);
  if (names.length === 0) return;
  for (const h of names) delete req.headers[h];
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    if (names.includes(raw[i]!.toLowerCase())) raw.splice(i, 2);
  }
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

/** Normalise anything thrown to a GeofenceError. */
export function asGeofenceError(err: unknown): GeofenceError {
  return GeofenceError.from(err);
}
