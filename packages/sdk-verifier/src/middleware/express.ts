/**
 * Express (4 and 5) adapter of the HTTP kit: each middleware runs one framework-neutral endpoint
 * (kit/endpoints.ts) on the Node request/response pair. Typed structurally against Node's http types,
 * so the package needs no Express types or runtime: Express is an optional peer dependency.
 */
import type { ServerResponse } from 'node:http';
import { DEFAULT_BODY_LIMIT_BYTES, type RejectedBy } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { sendProblem } from '../kit/answer.js';
import {
  createGatewayEndpoint,
  createMetricsEndpoint,
  createNonceEndpoint,
  type Endpoint,
} from '../kit/endpoints.js';
import {
  createForwarder,
  type ForwardedAnswer,
  type Forwarder,
  type ForwarderOptions,
} from '../kit/forwarder.js';
import { stripGatewayHeaders } from '../kit/gateway-headers.js';
import { bodyOf, type KitIncomingMessage, runEndpoint } from '../kit/node.js';
import type {
  CollectorOptions,
  GatewayOptions,
  GatewayVerdict,
  NonceEndpointOptions,
} from '../pipeline/types.js';
import { requestIdOf } from '../request-id.js';
import type { MiddlewareOptions } from './common.js';

/**
 * The request shape the middleware reads and decorates (an Express request satisfies it).
 * @public
 */
export interface GeofenceIncomingMessage extends KitIncomingMessage {
  /** Set by the gateway middleware: the parsed payload (metrics requests). */
  body?: unknown;
  /** Set by the gateway middleware: what was verified. */
  geofence?: GatewayVerdict;
}

/**
 * A Connect/Express middleware function.
 * @public
 */
export type GeofenceHandler = (
  req: GeofenceIncomingMessage,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

/**
 * Options of `geofence.express.collector`.
 * @public
 */
export type ExpressCollectorOptions = CollectorOptions & MiddlewareOptions;
/**
 * Options of `geofence.express.gateway`.
 * @public
 */
export type ExpressGatewayOptions = GatewayOptions & MiddlewareOptions;
/**
 * Options of `geofence.express.nonce`.
 * @public
 */
export type ExpressNonceOptions = NonceEndpointOptions & MiddlewareOptions;

function route(
  endpoint: Endpoint,
  onForward?: (req: GeofenceIncomingMessage, verdict: GatewayVerdict) => void,
): GeofenceHandler {
  return (req, res, next) => {
    runEndpoint(endpoint, req, res)
      .then((result) => {
        if (result.kind !== 'forward') return;
        stripGatewayHeaders(req, req.originalUrl ?? req.url ?? '/');
        onForward?.(req, result.verdict);
        next();
      })
      .catch(next);
  };
}

/**
 * `POST /metrics` handler of the collector: reads the body (limit → 413), verifies it in the SPEC §6.4
 * order, stores it through `onAccept` and answers `200 {status, message, record_id}`; every rejection
 * is `application/problem+json`. Mount it before any body parser (or set `req.rawBody`).
 * @example
 * ```ts
 * app.post('/metrics', geofence.express.collector({ registry, nonces }));
 * ```
 * @public
 */
export function collector(options: ExpressCollectorOptions): GeofenceHandler {
  return route(createMetricsEndpoint(options));
}

/**
 * `GET /nonce` handler of the collector: answers `200 {nonce, expires_at, expires_in}`.
 * @example
 * ```ts
 * app.get('/nonce', geofence.express.nonce({ registry, nonces }));
 * ```
 * @public
 */
export function nonce(options: ExpressNonceOptions): GeofenceHandler {
  return route(createNonceEndpoint(options));
}

/**
 * Gateway (policy-enforcement mode) middleware for `POST /metrics` and `GET /nonce`: rejects with
 * problem+json, or (metrics) strips `Signature`, `Signature-Input` and `Workload-Geo-ID`, sets `req.rawBody`,
 * `req.body` (payload) and `req.geofence` (verdict) and calls `next()` — follow it with your
 * forwarding handler (for example {@link forward}). Never consumes nonces.
 * @example
 * ```ts
 * app.post('/metrics', geofence.express.gateway({ registry }), geofence.express.forward({ target }));
 * ```
 * @public
 */
export function gateway(options: ExpressGatewayOptions): GeofenceHandler {
  return route(createGatewayEndpoint(options), (req, verdict) => {
    req.geofence = verdict;
    if (verdict.payload) req.body = verdict.payload;
  });
}

/**
 * Options of {@link forward}: a {@link Forwarder} you built (shared, closed by you), or the options
 * to build one.
 * @public
 */
export type ForwardOptions = ({ forwarder: Forwarder } | ForwarderOptions) & {
  /** `rejected_by` of upstream problems (default `gateway`). */
  rejectedBy?: RejectedBy;
  /** Maximum body bytes read when no earlier middleware read the body (default 1 MiB) → 413. */
  bodyLimit?: number;
  /**
   * Strip what {@link headersStrippedByGateway} names (default true: forwarding follows the
   * enforcing gateway middleware). `false` forwards the signature headers for the collector to check.
   */
  enforcing?: boolean;
  /** Called with each relayed answer (e.g. to label metrics with its `validationType`). */
  onAnswer?: (answer: ForwardedAnswer, req: GeofenceIncomingMessage, res: ServerResponse) => void;
  /** Called with each upstream failure before its problem is sent (e.g. to log it). */
  onFailure?: (error: GeofenceError, req: GeofenceIncomingMessage, res: ServerResponse) => void;
};

/**
 * Forwarding handler for the gateway: sends the request as received (the body bytes, the
 * allowlisted headers, minus the signature headers of `POST /metrics` when enforcing) to the
 * collector over a keep-alive pool and relays its answer, problems included. Upstream failures:
 * refused/reset → 503 with `Retry-After`, timeout → 504, other → 502 (`upstream`).
 * @example
 * ```ts
 * app.post('/metrics', geofence.express.gateway({ registry }), geofence.express.forward({ target }));
 * ```
 * @public
 */
export function forward(options: ForwardOptions): GeofenceHandler {
  const forwarder = 'forwarder' in options ? options.forwarder : createForwarder(options);
  const rejectedBy = options.rejectedBy ?? 'gateway';
  const enforcing = options.enforcing !== false;
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT_BYTES;
  return (req, res, next) => {
    const requestId = requestIdOf(res);
    const method = req.method ?? 'GET';
    bodyOf(req, method === 'GET' || method === 'HEAD' ? 0 : limit)
      .then(
        () => true,
        (err: unknown) => {
          sendProblem(res, GeofenceError.from(err), rejectedBy, requestId);
          return false;
        },
      )
      .then(async (read) => {
        if (!read) return;
        const answer = await forwarder
          .forward({
            method,
            url: req.originalUrl ?? req.url ?? '/',
            headers: req.headers,
            body: req.rawBody,
            clientAddress: req.socket?.remoteAddress,
            requestId,
            enforcing,
          })
          .catch((err: unknown) => {
            const ge = GeofenceError.from(err);
            options.onFailure?.(ge, req, res);
            sendProblem(res, ge, rejectedBy, requestId);
            return undefined;
          });
        if (!answer) return;
        options.onAnswer?.(answer, req, res);
        res.statusCode = answer.status;
        for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
        res.end(answer.body);
      })
      .catch(next);
  };
}

/**
 * Express error handler that renders {@link GeofenceError}s thrown by your own handlers (for example
 * `rate_limit`) as problem+json, and anything else as an opaque 500 `internal` problem.
 * @public
 */
export function errorHandler(options: { rejectedBy?: string } = {}) {
  return (
    err: unknown,
    _req: GeofenceIncomingMessage,
    res: ServerResponse,
    _next: (err?: unknown) => void,
  ): void => {
    sendProblem(res, GeofenceError.from(err), options.rejectedBy ?? 'collector', requestIdOf(res));
  };
}
