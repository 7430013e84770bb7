/**
 * `requireGeofence` for Fastify 5: a `preHandler` hook with the options of the Express middleware.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GeofenceError } from '../errors.js';
import { sendProblem } from '../kit/answer.js';
import { requestIdOf } from '../request-id.js';
import { type AdmittedRequest, createGeofenceGuard, type RequireGeofenceOptions } from './guard.js';
import { announcesBody } from './require-geofence.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `requireGeofenceFastify`: what the request proved. */
    geofenceCredential?: AdmittedRequest;
  }
}

/**
 * A Fastify `preHandler` admitting a request only with a valid PoG credential and a signature by
 * its key. Requests with a body need it as raw bytes (`request.body` a Buffer:
 * `removeAllContentTypeParsers()` and a `'*'` parser with `parseAs: 'buffer'` in these routes'
 * context), because `content-digest` covers the exact bytes; a parsed body is an `internal` error.
 *
 * @example
 * ```ts
 * app.get('/models/:file', { preHandler: requireGeofenceFastify({ issuer, jwks, origin }) }, handler);
 * ```
 * @public
 */
export function requireGeofenceFastify(
  options: RequireGeofenceOptions,
): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const guard = createGeofenceGuard(options);
  const rejectedBy = options.rejectedBy ?? 'resource';
  return async (request, reply) => {
    const rid = requestIdOf(reply.raw);
    try {
      let body: Buffer | undefined;
      if (Buffer.isBuffer(request.body)) body = request.body;
      else if (announcesBody(request.headers) && request.body !== undefined) {
        throw GeofenceError.from(
          new Error(
            'requireGeofenceFastify needs the body as a Buffer (parseAs: "buffer" content-type parser)',
          ),
        );
      }
      request.geofenceCredential = await guard.admit({
        method: request.method,
        target: request.raw.url ?? request.url,
        headers: request.headers,
        body,
      });
    } catch (err) {
      const ge = GeofenceError.from(err);
      options.onReject?.(ge, rid);
      reply.hijack();
      sendProblem(reply.raw, ge, rejectedBy, rid);
    }
  };
}
