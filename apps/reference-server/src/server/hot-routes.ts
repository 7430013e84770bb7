/**
 * The routes an agent calls on every flow — `GET /nonce` and `POST /metrics` — served without
 * Express; every other route stays on the Express app. Express 5 gives each request and response
 * its own prototypes (`Object.setPrototypeOf(req, app.request)`) and walks its router and
 * middleware stack per request; on the 2-core reference machine that cost more CPU per flow than
 * the three signature verifications (bench/flow.bench.ts, floor service with and without an
 * Express app in front). The handlers are the same {@link NodeHandler}s an Express route would
 * run, in the same order; this module only dispatches and chains them.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { RejectedBy } from '@geofence/verifier';
import type { ErrorRequestHandler, Express, Request, Response } from 'express';
import type { Logger } from '../logger.js';
import { errorHandler, type NodeHandler, notFound } from './http.js';

/** A route served by {@link serviceListener} instead of the Express app. */
export interface HotRoute {
  /** Methods served here (`HEAD` too where Express would have served it through the GET route). */
  methods: readonly string[];
  /** Exact path (Express's strict, case-sensitive routing: `/nonce/` is not `/nonce`). */
  path: string;
  /** The handlers in order; the last one answers. */
  handlers: readonly NodeHandler[];
}

/**
 * Runs `handlers` in order like an Express route: `next()` moves on, `next(err)` goes to `onError`,
 * and a chain that runs out without an answer goes to `onEnd` (the app's 404).
 */
function chain(
  handlers: readonly NodeHandler[],
  onError: ErrorRequestHandler,
  onEnd: RequestListener,
): RequestListener {
  return (req, res) => {
    let at = 0;
    const next = (err?: unknown): void => {
      if (err !== undefined) {
        onError(err, req as Request, res as Response, () => undefined);
        return;
      }
      const handler = handlers[at++];
      if (!handler) {
        onEnd(req, res);
        return;
      }
      try {
        handler(req, res, next);
      } catch (e) {
        onError(e, req as Request, res as Response, () => undefined);
      }
    };
    next();
  };
}

/**
 * The request listener of a service: the hot routes by exact method and path, everything else to
 * `app`. `onError` and `onEnd` are the app's final error handler and 404, so an answer does not
 * depend on which of the two served the request.
 */
export function serviceListener(
  app: Express,
  routes: readonly HotRoute[],
  onError: ErrorRequestHandler,
  onEnd: NodeHandler,
): RequestListener {
  const byTarget = new Map<string, RequestListener>();
  const end: RequestListener = (req, res) => onEnd(req, res, () => undefined);
  for (const r of routes) {
    const run = chain(r.handlers, onError, end);
    for (const m of r.methods) byTarget.set(`${m} ${r.path}`, run);
  }
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const hot = byTarget.get(`${req.method} ${q < 0 ? url : url.slice(0, q)}`);
    if (hot) hot(req, res);
    else app(req, res);
  };
}

/**
 * Finishes a service's app (404 and final error handler, shared with the hot routes) and returns
 * its listener with `GET`/`HEAD /nonce` and `POST /metrics` served by `handlers`.
 */
export function agentRoutesListener(
  app: Express,
  log: Logger,
  rejectedBy: RejectedBy,
  handlers: { nonce: readonly NodeHandler[]; metrics: readonly NodeHandler[] },
): RequestListener {
  const fallThrough = notFound(rejectedBy);
  const onError = errorHandler(log, rejectedBy);
  app.use(fallThrough);
  app.use(onError);
  return serviceListener(
    app,
    [
      { methods: ['GET', 'HEAD'], path: '/nonce', handlers: handlers.nonce },
      { methods: ['POST'], path: '/metrics', handlers: handlers.metrics },
    ],
    onError,
    fallThrough,
  );
}
