/**
 * Express (4 and 5) middleware. Typed structurally against Node's http types, so the package needs no
 * Express types or runtime: Express is an optional peer dependency.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_BODY_LIMIT_BYTES } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import {
  validateCollectorOptions,
  validateGatewayOptions,
  validateNonceOptions,
} from '../pipeline/options.js';
import type {
  CollectorOptions,
  GatewayOptions,
  GatewayVerdict,
  NonceEndpointOptions,
  VerifierRequest,
} from '../pipeline/types.js';
import { issueNonce, verifyAtGateway, verifyMetrics } from '../pipeline/verify.js';
import { clientRequestIdOf, requestIdOf } from '../request-id.js';
import { readBody } from './body.js';
import {
  checkMiddlewareOptions,
  headersStrippedByGateway,
  type MiddlewareOptions,
  sendJson,
  sendProblem,
  stripGatewayHeaders,
} from './common.js';

/**
 * The request shape the middleware reads and decorates (an Express request satisfies it).
 * @public
 */
export interface GeofenceIncomingMessage extends IncomingMessage {
  /** Express: the URL before mount-path stripping (used for `@path`). */
  originalUrl?: string;
  /** Set by the middleware: the body bytes exactly as received. Honoured when already set by the app. */
  rawBody?: Buffer;
  /** Set by the middleware: the parsed payload (metrics requests). */
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

async function toVerifierRequest(
  req: GeofenceIncomingMessage,
  limit: number,
  withBody: boolean,
): Promise<VerifierRequest> {
  const vr: VerifierRequest = {
    method: req.method ?? 'GET',
    url: req.originalUrl ?? req.url ?? '/',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
  };
  if (withBody) {
    if (Buffer.isBuffer(req.rawBody)) vr.rawBody = req.rawBody;
    else if (req.readableEnded || (req as { _body?: boolean })._body) {
      // A body parser ran before us and the bytes are gone: verification is impossible.
      throw GeofenceError.from(
        new Error(
          'request body was consumed before the geofence middleware; mount it before body parsers or set req.rawBody',
        ),
      );
    } else {
      req.rawBody = await readBody(req, limit);
      vr.rawBody = req.rawBody;
    }
  }
  return vr;
}

function wrap(
  role: string,
  opts: MiddlewareOptions,
  run: (
    req: GeofenceIncomingMessage,
    res: ServerResponse,
    next: (err?: unknown) => void,
    rid: string,
  ) => Promise<void>,
): GeofenceHandler {
  const rejectedBy = opts.rejectedBy ?? role;
  return (req, res, next) => {
    const rid = requestIdOf(res);
    run(req, res, next, rid).catch((err: unknown) => {
      const ge = GeofenceError.from(err);
      // With the body when it was read, so a rejection hook can show what was refused.
      const vr: VerifierRequest = {
        method: req.method ?? '',
        url: req.originalUrl ?? req.url ?? '',
        headers: req.headers,
      };
      if (Buffer.isBuffer(req.rawBody)) vr.rawBody = req.rawBody;
      opts.onReject?.(ge, vr, rid, clientRequestIdOf(req.headers));
      sendProblem(res, ge, rejectedBy, rid);
    });
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
  validateCollectorOptions(options);
  checkMiddlewareOptions(options, 'collector');
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT_BYTES;
  return wrap('collector', options, async (req, res, _next, rid) => {
    const vr = await toVerifierRequest(req, limit, true);
    await options.beforeVerify?.(vr);
    const verdict = await verifyMetrics(vr, options);
    req.body = verdict.payload;
    sendJson(res, 200, verdict.body, rid);
  });
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
  validateNonceOptions(options);
  checkMiddlewareOptions(options, 'nonce');
  return wrap('collector', options, async (req, res, _next, rid) => {
    const vr = await toVerifierRequest(req, 0, false);
    await options.beforeVerify?.(vr);
    const verdict = await issueNonce(vr, options);
    sendJson(res, 200, verdict.body, rid);
  });
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
  validateGatewayOptions(options);
  checkMiddlewareOptions(options, 'gateway');
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT_BYTES;
  return wrap('gateway', options, async (req, _res, next, _rid) => {
    const isGet = req.method === 'GET';
    const vr = await toVerifierRequest(req, limit, !isGet);
    await options.beforeVerify?.(vr);
    const verdict = await verifyAtGateway(vr, options);
    stripGatewayHeaders(req, req.originalUrl ?? req.url ?? '/');
    req.geofence = verdict;
    if (verdict.payload) req.body = verdict.payload;
    next();
  });
}

/**
 * Options of {@link forward}.
 * @public
 */
export interface ForwardOptions {
  /** Base URL of the collector, e.g. `https://collector.internal:8444`. */
  target: string;
  /** Timeout in milliseconds (default 10 000) → 504 `upstream`. */
  timeoutMs?: number;
  /** `rejected_by` of upstream problems (default `gateway`). */
  rejectedBy?: string;
  /** fetch implementation (default: global fetch; pass undici's with a custom dispatcher for TLS). */
  fetch?: typeof fetch;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
]);

/**
 * Minimal forwarding handler for the gateway: sends the verified request (without the signature
 * headers) to `target` + the original path and relays the answer, including the collector's
 * problems. Connection failures → 502 `upstream`, timeouts → 504 `upstream`.
 * @public
 */
export function forward(options: ForwardOptions): GeofenceHandler {
  let base: URL;
  try {
    base = new URL(options.target);
  } catch {
    throw new TypeError('@geofence/verifier forward: option target must be an absolute URL');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError('@geofence/verifier forward: option target must be an http(s) URL');
  }
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  return (req, res) => {
    const rid = requestIdOf(res);
    const headers = new Headers();
    const method = req.method ?? 'GET';
    const path = req.originalUrl ?? req.url ?? '/';
    const stripped = headersStrippedByGateway(method, path);
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || HOP_BY_HOP.has(k) || stripped.includes(k)) continue;
      for (const line of Array.isArray(v) ? v : [v]) headers.append(k, line);
    }
    headers.set('x-request-id', rid);
    const url = new URL(path.replace(/^\/+/, '/'), base);
    const body = method === 'GET' || method === 'HEAD' ? undefined : req.rawBody;
    doFetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' })
      .then(async (up) => {
        const bytes = Buffer.from(await up.arrayBuffer());
        res.statusCode = up.status;
        up.headers.forEach((value, key) => {
          // fetch already decoded the body, so its content-encoding no longer applies
          if (!HOP_BY_HOP.has(key) && key !== 'content-encoding') res.setHeader(key, value);
        });
        res.end(bytes);
      })
      .catch((err: unknown) => {
        const timeout = (err as Error)?.name === 'TimeoutError';
        const ge = new GeofenceError('upstream', undefined, { status: timeout ? 504 : 502, cause: err });
        sendProblem(res, ge, options.rejectedBy ?? 'gateway', rid);
      });
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
