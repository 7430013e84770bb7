/**
 * Fastify (5) adapter of the HTTP kit, with the same options as the Express middleware: each route
 * runs one framework-neutral endpoint (kit/endpoints.ts). Encapsulated: its raw-body
 * content-type parser and problem+json error handler apply only to the routes it registers.
 */

import { DEFAULT_BODY_LIMIT_BYTES } from '@geofence/protocol';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { GeofenceError } from '../errors.js';
import { type HttpAnswer, problemAnswer, writeAnswer } from '../kit/answer.js';
import {
  createGatewayEndpoint,
  createMetricsEndpoint,
  createNonceEndpoint,
  type Endpoint,
  type EndpointRequest,
} from '../kit/endpoints.js';
import { stripGatewayHeaders } from '../kit/gateway-headers.js';
import type { GatewayVerdict } from '../pipeline/types.js';
import { requestIdOf } from '../request-id.js';
import type { ExpressCollectorOptions, ExpressGatewayOptions, ExpressNonceOptions } from './express.js';

/**
 * Options of the Fastify plugin. Give one or more roles; each registers its routes.
 * @public
 */
export interface GeofenceFastifyOptions {
  /** Registers `POST <paths.metrics>` (collector). Same options as `geofence.express.collector`. */
  collector?: ExpressCollectorOptions;
  /** Registers `GET <paths.nonce>` (collector). Same options as `geofence.express.nonce`. */
  nonce?: ExpressNonceOptions;
  /**
   * Registers `POST <paths.metrics>` and `GET <paths.nonce>` (gateway). Same options as
   * `geofence.express.gateway`, plus `forward`, called after the checks passed (for metrics the
   * signature headers are already stripped from `request.headers`; `request.body` is the raw body Buffer).
   */
  gateway?: ExpressGatewayOptions & {
    forward(request: FastifyRequest, reply: FastifyReply, verdict: GatewayVerdict): unknown;
  };
  /** Route paths (default `/metrics` and `/nonce`). */
  paths?: { metrics?: string; nonce?: string };
}

function endpointRequest(request: FastifyRequest, requestId: string): EndpointRequest {
  const req: EndpointRequest = {
    method: request.method,
    url: request.raw.url ?? request.url,
    headers: request.headers,
    rawHeaders: request.raw.rawHeaders,
    requestId,
  };
  if (Buffer.isBuffer(request.body)) req.rawBody = request.body;
  return req;
}

function send(reply: FastifyReply, answer: HttpAnswer, requestId: string) {
  // The one writer: the same bytes and headers as the Express adapter.
  reply.hijack();
  writeAnswer(reply.raw, answer, requestId);
}

async function geofencePlugin(app: FastifyInstance, opts: GeofenceFastifyOptions): Promise<void> {
  if (!opts.collector && !opts.nonce && !opts.gateway) {
    throw new TypeError('@geofence/verifier fastify: give at least one of collector, nonce, gateway');
  }
  if (opts.collector && opts.gateway) {
    throw new TypeError(
      '@geofence/verifier fastify: collector and gateway both register POST /metrics; register them separately',
    );
  }
  const metricsEndpoint = opts.collector ? createMetricsEndpoint(opts.collector) : undefined;
  const nonceEndpoint = opts.nonce ? createNonceEndpoint(opts.nonce) : undefined;
  const gatewayEndpoint = opts.gateway ? createGatewayEndpoint(opts.gateway) : undefined;
  if (opts.gateway && typeof opts.gateway.forward !== 'function')
    throw new TypeError('@geofence/verifier fastify: gateway.forward must be a function');
  const metricsPath = opts.paths?.metrics ?? '/metrics';
  const noncePath = opts.paths?.nonce ?? '/nonce';
  const limit = (opts.collector ?? opts.gateway)?.bodyLimit ?? DEFAULT_BODY_LIMIT_BYTES;
  const defaultRejectedBy = opts.gateway ? 'gateway' : 'collector';

  // Keep every body as raw bytes (the signature and Content-Digest cover the exact bytes); the
  // pipeline itself decides about media types (415) and JSON (400).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limit }, (_req, body, done) =>
    done(null, body),
  );
  app.setErrorHandler((err: { statusCode?: number; code?: string }, request, reply) => {
    let ge: GeofenceError;
    if (err instanceof GeofenceError) ge = err;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413) {
      ge = new GeofenceError('request_validation', 'Payload too large', { status: 413, details: { limit } });
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.statusCode === 415) {
      ge = new GeofenceError('request_validation', 'Unsupported media type', { status: 415 });
    } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      ge = new GeofenceError('request_validation', 'Invalid payload structure');
    } else ge = GeofenceError.from(err);
    const requestId = requestIdOf(reply.raw);
    // The route's own endpoint rejects (its onReject and rejected_by), as after a failed check.
    const endpoint =
      request.method === 'GET' ? (nonceEndpoint ?? gatewayEndpoint) : (metricsEndpoint ?? gatewayEndpoint);
    send(
      reply,
      endpoint
        ? endpoint.reject(ge, endpointRequest(request, requestId))
        : problemAnswer(ge, defaultRejectedBy, requestId),
      requestId,
    );
  });

  const answer = (endpoint: Endpoint) => async (request: FastifyRequest, reply: FastifyReply) => {
    const requestId = requestIdOf(reply.raw);
    const result = await endpoint.handle(endpointRequest(request, requestId));
    if (result.kind === 'answer') send(reply, result.answer, requestId);
  };
  if (metricsEndpoint) app.post(metricsPath, answer(metricsEndpoint));
  if (nonceEndpoint) app.get(noncePath, answer(nonceEndpoint));
  if (gatewayEndpoint && opts.gateway) {
    const forward = opts.gateway.forward;
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      const requestId = requestIdOf(reply.raw);
      const result = await gatewayEndpoint.handle(endpointRequest(request, requestId));
      if (result.kind === 'answer') return send(reply, result.answer, requestId);
      stripGatewayHeaders(request.raw, request.url);
      for (const h of result.stripped) delete request.headers[h];
      return forward(request, reply, result.verdict);
    };
    app.post(metricsPath, handler);
    app.get(noncePath, handler);
  }
}

/**
 * The Fastify plugin (`import { geofenceFastify } from '@geofence/verifier/fastify'`):
 * `app.register(geofenceFastify, { collector: {...}, nonce: {...} })` or
 * `{ gateway: {..., forward} }`. Options are validated at registration with clear errors.
 * @public
 */
export const geofenceFastify: FastifyPluginAsync<GeofenceFastifyOptions> = fp(geofencePlugin, {
  name: '@geofence/verifier',
  fastify: '5.x',
  encapsulate: true,
});
