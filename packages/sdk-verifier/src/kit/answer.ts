/**
 * The one HTTP answer of the kit: every endpoint handler returns an {@link HttpAnswer}, every
 * rejection becomes one through {@link problemAnswer}, and every adapter (Express, Fastify, plain
 * `node:http`) writes it with {@link writeAnswer}. So status, `Retry-After`, `Cache-Control` and the
 * problem body (SPEC §7) are decided once, whatever framework serves the route.
 */
import type { ServerResponse } from 'node:http';
import type { RejectedBy } from '@geofence/protocol';
import type { GeofenceError } from '../errors.js';
import { problemHeaders } from '../problem-headers.js';

/**
 * A framework-neutral HTTP answer: status, headers and a JSON body.
 * @public
 */
export interface HttpAnswer {
  /** HTTP status. */
  status: number;
  /** Response headers (content type, cache control, `Retry-After`). */
  headers: Record<string, string>;
  /** JSON body (serialised by {@link writeAnswer}). */
  body: unknown;
}

const JSON_NO_STORE = Object.freeze({ 'content-type': 'application/json', 'cache-control': 'no-store' });

/**
 * A JSON answer that no cache keeps (nonces, verdicts and results are per request).
 * @public
 */
export function jsonAnswer(status: number, body: unknown): HttpAnswer {
  return { status, headers: { ...JSON_NO_STORE }, body };
}

/**
 * The one problem shape: `err` as RFC 9457 `application/problem+json` (SPEC §7) with its status and,
 * when it has one, `Retry-After`.
 * @public
 */
export function problemAnswer(err: GeofenceError, rejectedBy: RejectedBy, requestId: string): HttpAnswer {
  return { status: err.status, headers: problemHeaders(err), body: err.toProblem({ rejectedBy, requestId }) };
}

/**
 * Write `answer` to a Node response with `X-Request-Id`; after a 413 also `Connection: close` (the
 * unread body is not drained). Destroys the socket when headers were already sent, since no valid
 * answer is possible then.
 * @public
 */
export function writeAnswer(res: ServerResponse, answer: HttpAnswer, requestId: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(answer.body);
  res.statusCode = answer.status;
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  res.setHeader('x-request-id', requestId);
  if (answer.status === 413) res.setHeader('connection', 'close');
  res.end(body);
}

/**
 * The one problem writer: `writeAnswer(res, problemAnswer(err, rejectedBy, requestId), requestId)`.
 * @public
 */
export function sendProblem(
  res: ServerResponse,
  err: GeofenceError,
  rejectedBy: RejectedBy,
  requestId: string,
): void {
  writeAnswer(res, problemAnswer(err, rejectedBy, requestId), requestId);
}
