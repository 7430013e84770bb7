/**
 * Express plumbing shared by the collector and the gateway: request ids, problem+json answers in the
 * aligned error model, admin bearer-token auth, rate limiting, 404/405 for unknown routes, and the
 * final error handler (no stack traces in bodies).
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import {
  GeofenceError,
  type RejectedBy,
  requestIdOf as verifierRequestIdOf,
  sendProblem as writeProblem,
} from '@geofence/verifier';
import express, { type ErrorRequestHandler, type Express, type RequestHandler, type Response } from 'express';
import type { Registry } from 'prom-client';
import proxyaddr from 'proxy-addr';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { claimedKeyid, RateLimiter, type TokenBuckets } from '../rate-limit.js';
import { rateLimitStoreUnavailable } from '../rate-limit-redis.js';
import { prometheusText } from './cluster-metrics.js';
import type { ServiceMetrics } from './prom.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Correlation id (also sent back as `X-Request-Id`). */
    requestId?: string;
  }
}

/**
 * A handler that needs nothing Express adds to Node's request and response: it runs the same on an
 * Express route and on a {@link HotRoute} of hot-routes.ts.
 */
export type NodeHandler = (
  req: IncomingMessage & { requestId?: string },
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

/** Request id of `req` (set by {@link requestIdMiddleware}). */
export function requestIdOf(req: { requestId?: string }): string {
  return req.requestId ?? 'unknown';
}

/**
 * Assigns the request id by the verifier's one rule (`requestIdOf`: ours, never the client's), which
 * the verifier's handlers then reuse from the response header.
 */
export function requestIdMiddleware(): NodeHandler {
  return (req, res, next) => {
    req.requestId = verifierRequestIdOf(res);
    next();
  };
}

/**
 * Path and query of a request target, as Express's router and its `simple` query parser
 * (`node:querystring`) see them: `/nonce?public_key_hash=…` → `/nonce`, `{public_key_hash: …}`.
 */
export function targetOf(url: string | undefined): { path: string; query: Record<string, unknown> } {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q < 0 ? { path: u, query: {} } : { path: u.slice(0, q), query: parseQuery(u.slice(q + 1)) };
}

/**
 * The client address of a request by the app's `trust proxy` setting: the very function Express
 * compiles from it for `req.ip` (`trust proxy fn`), applied by `proxy-addr` as `req.ip` does.
 */
export function clientAddressOf(app: Express): (req: IncomingMessage) => string {
  const trust = app.get('trust proxy fn') as Parameters<typeof proxyaddr>[1];
  return (req) => proxyaddr(req, trust);
}

/** Answers with an aligned-model problem+json body, through the verifier's one problem writer. */
export function sendProblem(
  req: { requestId?: string },
  res: ServerResponse,
  err: GeofenceError,
  rejectedBy: RejectedBy,
): void {
  (res as Response).validationType = err.validationType;
  writeProblem(res, err, rejectedBy, requestIdOf(req));
}

/** Constant-time comparison of two secrets (length is not hidden). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Requires `Authorization: Bearer <admin token>` (SPEC §8), compared in constant time. A missing or
 * wrong token answers 403 with validation_type `agent_verification` (the closed set of SPEC §7 has no
 * separate authentication type; the `error` member says "Admin authentication required").
 */
export function adminAuth(token: string, rejectedBy: RejectedBy): RequestHandler {
  return (req, res, next) => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (m?.[1] && safeEqual(m[1].trim(), token)) return next();
    res.setHeader('www-authenticate', 'Bearer realm="geofence-admin"');
    sendProblem(
      req,
      res,
      new GeofenceError('agent_verification', 'Admin authentication required'),
      rejectedBy,
    );
  };
}

/** The two limiters of a service. */
export interface RateLimiters {
  ip: TokenBuckets;
  keyid: TokenBuckets;
  /** Where the buckets live (`memory`: this process; `redis`: shared by every replica and worker). */
  store: 'memory' | 'redis';
}

/**
 * Per-IP and per-keyid rate limiting → 429 `rate_limit` with `Retry-After`. A shared bucket store
 * that cannot answer fails closed: 503 `upstream` with Retry-After (`details.dependency`
 * `rate_limit_store`), never an unlimited pass.
 *
 * The keyid of a request is only claimed until the verifier checks it, so anyone could spend a
 * victim's budget by sending garbage under the victim's keyid. Therefore the per-keyid bucket is only
 * charged for requests that succeeded (2xx, i.e. verified for `/metrics`); before processing it is
 * merely consulted. The per-IP bucket is charged for every request.
 */
export function rateLimitMiddleware(
  limiters: RateLimiters | undefined,
  rejectedBy: RejectedBy,
  clientAddress: (req: IncomingMessage) => string | undefined,
  onLimited?: (kind: 'ip' | 'keyid') => void,
): NodeHandler {
  return (req, res, next) => {
    if (!limiters) return next();
    const kid = claimedKeyid(targetOf(req.url).query, headerString(req, 'signature-input'));
    const decide = async (): Promise<{ kind: 'ip' | 'keyid'; retry: number } | undefined> => {
      // Both buckets are asked at once (one round trip of latency with a shared store).
      const [ip, key] = await Promise.all([
        limiters.ip.take(`ip:${clientAddress(req) ?? 'unknown'}`),
        kid ? limiters.keyid.peek(`kid:${kid}`) : undefined,
      ]);
      if (!ip.allowed) return { kind: 'ip', retry: ip.retryAfterSeconds };
      if (key && !key.allowed) return { kind: 'keyid', retry: key.retryAfterSeconds };
      return undefined;
    };
    decide().then(
      (limited) => {
        if (!limited) {
          if (kid) {
            res.on('finish', () => {
              if (res.statusCode < 200 || res.statusCode >= 300) return;
              // The request is answered already; an outage now only leaves this one token untaken.
              Promise.resolve()
                .then(() => limiters.keyid.take(`kid:${kid}`))
                .catch(() => undefined);
            });
          }
          next();
          return;
        }
        onLimited?.(limited.kind);
        sendProblem(
          req,
          res,
          new GeofenceError('rate_limit', undefined, {
            retryAfter: limited.retry,
            details: { limited_by: limited.kind },
          }),
          rejectedBy,
        );
      },
      (err: unknown) => {
        const gf = err instanceof GeofenceError ? err : rateLimitStoreUnavailable(err);
        sendProblem(req, res, gf, rejectedBy);
      },
    );
  };
}

/** A header as one string (joined when repeated). */
export function headerString(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * 404 for unknown routes (no catch-all proxying, SPEC §8): the aligned problem of type
 * `request_validation` with status 404.
 */
export function notFound(rejectedBy: RejectedBy): NodeHandler {
  return (req, res) => {
    const err = new GeofenceError('request_validation', 'Not found', {
      status: 404,
      details: { method: req.method, path: targetOf(req.url).path },
    });
    sendProblem(req, res, err, rejectedBy);
  };
}

/**
 * Final error handler: GeofenceErrors as they are (a store fault is `StoreUnavailableError`: 503
 * `upstream` with Retry-After), body-parser errors → 400/413/415, everything else → opaque 500.
 */
export function errorHandler(log: Logger, rejectedBy: RejectedBy): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let gf: GeofenceError;
    const status = (err as { status?: number; statusCode?: number }).status;
    if (err instanceof GeofenceError) {
      gf = err;
      if (gf.status >= 500)
        log.warn({ err: gf.cause ?? gf, request_id: requestIdOf(req), details: gf.details }, gf.error);
    } else if (status === 413)
      gf = new GeofenceError('request_validation', 'Payload too large', { status: 413 });
    else if (status === 415)
      gf = new GeofenceError('request_validation', 'Unsupported media type', { status: 415 });
    else if (status !== undefined && status >= 400 && status < 500)
      gf = new GeofenceError('request_validation', 'Invalid request');
    else {
      log.error({ err, request_id: requestIdOf(req) }, 'unhandled error');
      gf = new GeofenceError('internal');
    }
    sendProblem(req, res, gf, rejectedBy);
  };
}

/**
 * `GET /metrics-prometheus`: the service's metrics (of every worker when clustered). When the
 * cluster primary cannot answer, 503 `upstream` with Retry-After rather than a partial scrape.
 */
export function metricsExposition(registry: Registry, rejectedBy: RejectedBy): RequestHandler {
  return (req, res) => {
    prometheusText(registry).then(
      (text) => res.type(registry.contentType).send(text),
      (err: unknown) =>
        sendProblem(
          req,
          res,
          new GeofenceError('upstream', 'Metrics unavailable', { status: 503, retryAfter: 1, cause: err }),
          rejectedBy,
        ),
    );
  };
}

/** What {@link serviceApp} sets up for a service. */
export interface ServiceApp {
  app: Express;
  /** Rate limiters (undefined when rate limiting is off). */
  limiters: RateLimiters | undefined;
  /** Rate-limiting middleware for the routes agents call. */
  limited: NodeHandler;
  /** Admin bearer-token check. */
  admin: RequestHandler;
  /** What runs before every route, on Express and on the hot routes alike: the request id. */
  first: NodeHandler;
}

/**
 * The Express app the collector and the gateway both start from: exact routing, no
 * `x-powered-by`, the configured proxy trust, request ids, Prometheus counting, and the rate
 * limiters and admin check their routes use. `shared`: buckets kept outside this process (Redis);
 * otherwise in-process buckets from `opts.rateLimit`.
 */
export function serviceApp(
  opts: { trustProxy: boolean | string; rateLimit: Config['rateLimit'] },
  metrics: Pick<ServiceMetrics, 'middleware' | 'rateLimited'>,
  adminToken: string,
  rejectedBy: RejectedBy,
  shared?: RateLimiters,
): ServiceApp {
  const app = express();
  app.disable('x-powered-by');
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.set('trust proxy', opts.trustProxy);
  const first = requestIdMiddleware();
  app.use(first);
  app.use(metrics.middleware);
  const limiters: RateLimiters | undefined = !opts.rateLimit.enabled
    ? undefined
    : (shared ?? {
        ip: new RateLimiter(opts.rateLimit.perIpPerSecond, opts.rateLimit.perIpBurst),
        keyid: new RateLimiter(opts.rateLimit.perKeyidPerSecond, opts.rateLimit.perKeyidBurst),
        store: 'memory',
      });
  const limited = rateLimitMiddleware(limiters, rejectedBy, clientAddressOf(app), (kind) =>
    metrics.rateLimited.inc({ kind }),
  );
  return { app, limiters, limited, admin: adminAuth(adminToken, rejectedBy), first };
}
