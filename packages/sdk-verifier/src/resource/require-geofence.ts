/**
 * `requireGeofence()` for resource servers (Express 4/5 or any Connect-style stack): the middleware
 * in front of a protected resource (model weights, secrets, inference). Typed structurally against
 * Node's http types, like the other middleware.
 */
import type { ServerResponse } from 'node:http';
import { DEFAULT_BODY_LIMIT_BYTES } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { sendProblem } from '../kit/answer.js';
import { readBody } from '../kit/body.js';
import type { GeofenceHandler, GeofenceIncomingMessage } from '../middleware/express.js';
import { requestIdOf } from '../request-id.js';
import { type AdmittedRequest, createGeofenceGuard, type RequireGeofenceOptions } from './guard.js';

/**
 * A request after `requireGeofence` admitted it.
 * @public
 */
export interface GeofenceAdmittedMessage extends GeofenceIncomingMessage {
  /** What the request proved (agent, credential claims, signature). */
  geofenceCredential?: AdmittedRequest;
}

/** Whether the request announces a body (RFC 9112 §6.3: Content-Length or Transfer-Encoding). */
export function announcesBody(headers: Record<string, string | string[] | undefined>): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Express middleware admitting a request only with a valid PoG credential and a signature by its
 * key (see {@link createGeofenceGuard}); sets `req.geofenceCredential` (and `req.rawBody` when the
 * request has a body) and calls `next()`, or answers the SPEC §7 problem naming the failed check.
 * Mount it before any body parser.
 *
 * @example
 * ```ts
 * app.use('/models', requireGeofence({
 *   issuer: 'https://collector.example:8444',
 *   jwks: 'https://collector.example:8444/.well-known/jwks.json',
 *   origin: 'https://models.example:8446',
 *   policy: { minTrustLevel: 'low', allow: [{ region: 'US', state: 'California' }] },
 * }));
 * ```
 * @public
 */
export function requireGeofence(options: RequireGeofenceOptions): GeofenceHandler {
  const guard = createGeofenceGuard(options);
  const limit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const rejectedBy = options.rejectedBy ?? 'resource';
  return (req, res: ServerResponse, next) => {
    const rid = requestIdOf(res);
    (async () => {
      let body: Buffer | undefined;
      if (Buffer.isBuffer(req.rawBody)) body = req.rawBody;
      else if (announcesBody(req.headers)) {
        if (req.readableEnded) {
          throw GeofenceError.from(
            new Error('request body was consumed before requireGeofence; mount it before body parsers'),
          );
        }
        body = await readBody(req, limit);
        req.rawBody = body;
      }
      const admitted = await guard.admit({
        method: req.method ?? 'GET',
        target: req.originalUrl ?? req.url ?? '/',
        headers: req.headers,
        body,
      });
      (req as GeofenceAdmittedMessage).geofenceCredential = admitted;
      next();
    })().catch((err: unknown) => {
      const ge = GeofenceError.from(err);
      options.onReject?.(ge, rid);
      sendProblem(res, ge, rejectedBy, rid);
    });
  };
}
