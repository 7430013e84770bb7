/**
 * Fastify (5) plugin with the same options as the Express middleware. Encapsulated: its raw-body
 * content-type parser and problem+json error handler apply only to the routes it registers.
 */

import { DEFAULT_BODY_LIMIT_BYTES } from '@geofence/protocol';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { GeofenceError } from '../errors.js';
import {
  validateCollectorOptions,
  validateGatewayOptions,
  validateNonceOptions,
} from '../pipeline/options.js';
import type { GatewayVerdict, VerifierRequest } from '../pipeline/types.js';
import { issueNonce, verifyAtGateway, verifyMetrics } from '../pipeline/verify.js';
import { clientRequestIdOf, requestIdOf } from '../request-id.js';
import {
  checkMiddlewareOptions,
  headersStrippedByGateway,
  sendProblem,
  stripGatewayHeaders,
} from './common.js';
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

function toVerifierRequest(request: FastifyRequest): VerifierRequest {
  const vr: VerifierRequest = {
    method: request.method,
    url: request.raw.url ?? request.url,
    headers: request.headers,
    rawHeaders: request.raw.rawHeaders,
  };
  if (Buffer.isBuffer(request.body)) vr.rawBody = request.body;
  return vr;
}

function fail(
  reply: FastifyReply,
  request: FastifyRequest,
  err: unknown,
  rejectedBy: string,
  onReject?: ExpressCollectorOptions['onReject'],
) {
  const ge = GeofenceError.from(err);
  const rid = requestIdOf(reply.raw);
  onReject?.(ge, toVerifierRequest(request), rid, clientRequestIdOf(request.headers));
  reply.hijack();
  sendProblem(reply.raw, ge, rejectedBy, rid);
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
  if (opts.collector) {
    validateCollectorOptions(opts.collector);
    checkMiddlewareOptions(opts.collector, 'collector');
  }
  if (opts.nonce) {
    validateNonceOptions(opts.nonce);
    checkMiddlewareOptions(opts.nonce, 'nonce');
  }
  if (opts.gateway) {
    validateGatewayOptions(opts.gateway);
    checkMiddlewareOptions(opts.gateway, 'gateway');
    if (typeof opts.gateway.forward !== 'function')
      throw new TypeError('@geofence/verifier fastify: gateway.forward must be a function');
  }
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
    fail(reply, request, ge, defaultRejectedBy);
  });

  if (opts.collector) {
    const o = opts.collector;
    app.post(metricsPath, async (request, reply) => {
      try {
        const vr = toVerifierRequest(request);
        await o.beforeVerify?.(vr);
        const verdict = await verifyMetrics(vr, o);
        reply.header('cache-control', 'no-store').header('x-request-id', requestIdOf(reply.raw));
        return reply.code(200).send(verdict.body);
      } catch (err) {
        return fail(reply, request, err, o.rejectedBy ?? 'collector', o.onReject);
      }
    });
  }
  if (opts.nonce) {
    const o = opts.nonce;
    app.get(noncePath, async (request, reply) => {
      try {
        const vr = toVerifierRequest(request);
        await o.beforeVerify?.(vr);
        const verdict = await issueNonce(vr, o);
        reply.header('cache-control', 'no-store').header('x-request-id', requestIdOf(reply.raw));
        return reply.code(200).send(verdict.body);
      } catch (err) {
        return fail(reply, request, err, o.rejectedBy ?? 'collector', o.onReject);
      }
    });
  }
  if (opts.gateway) {
    const o = opts.gateway;
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      let verdict: GatewayVerdict;
      try {
        const vr = toVerifierRequest(request);
        await o.beforeVerify?.(vr);
        verdict = await verifyAtGateway(vr, o);
      } catch (err) {
        return fail(reply, request, err, o.rejectedBy ?? 'gateway', o.onReject);
      }
      stripGatewayHeaders(request.raw, request.url);
      for (const h of headersStrippedByGateway(request.method, request.url)) delete request.headers[h];
      return o.forward(request, reply, verdict);
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
