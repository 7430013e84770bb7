/**
 * Prometheus metrics (prom-client) of a collector or gateway: requests by route/status/validation_type,
 * verification latency histogram, nonce store size. Each service gets its own registry (no global
 * state, so several services can run in one process as the demo does).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { NodeHandler } from './http.js';

/**
 * validation_type of rejections answered by the verifier middleware (which sends its own problem
 * responses), keyed by the request's header object; read when the response finishes.
 */
const rejections = new WeakMap<IncomingHttpHeaders, string>();

/** Records the validation_type of a rejected request for the metrics labels. */
export function noteRejection(headers: IncomingHttpHeaders, validationType: string): void {
  rejections.set(headers, validationType);
}

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { answerMetricsCollection } from './cluster-metrics.js';

/** Metric handles of one service. */
export interface ServiceMetrics {
  registry: Registry;
  requests: Counter<'route' | 'method' | 'status' | 'validation_type'>;
  verifyLatency: Histogram<'route' | 'outcome'>;
  nonceStoreSize: Gauge;
  recordsStored: Counter;
  rateLimited: Counter<'kind'>;
  /** Express middleware counting every response (validation_type read from problem answers). */
  middleware: RequestHandler;
  /**
   * The same count for a route served outside Express (hot-routes.ts), labelled `route`: Express's
   * middleware reads the label from the route it matched.
   */
  countedAs(route: string): NodeHandler;
}

declare module 'express-serve-static-core' {
  interface Response {
    /** validation_type of a rejection, set when a problem is sent (for metrics). */
    validationType?: string;
  }
}

/** Creates the metrics of one service. */
export function createServiceMetrics(
  service: string,
  nonceSize?: () => Promise<number> | number,
  defaultMetrics = false,
): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  answerMetricsCollection(registry);
  const requests = new Counter({
    name: 'geofence_http_requests_total',
    help: 'HTTP requests by route, method, status and validation_type (none for accepted requests)',
    labelNames: ['route', 'method', 'status', 'validation_type'] as const,
    registers: [registry],
  });
  const verifyLatency = new Histogram({
    name: 'geofence_verification_duration_seconds',
    help: 'Time spent verifying a request (nonce issuance or metrics verification), by route and outcome',
    labelNames: ['route', 'outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const nonceStoreSize = new Gauge({
    name: 'geofence_nonce_store_outstanding',
    help: 'Outstanding (issued, unconsumed) nonces in the nonce store',
    registers: [registry],
    // Workers share one store and each reports all of it: summing across workers would multiply it.
    aggregator: 'max',
    async collect() {
      if (!nonceSize) return;
      // A nonce store outage must not take the whole scrape down with it: report NaN (unknown).
      this.set(
        await Promise.resolve()
          .then(nonceSize)
          .catch(() => Number.NaN),
      );
    },
  });
  const recordsStored = new Counter({
    name: 'geofence_records_stored_total',
    help: 'Accepted records written durably to the record store',
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'geofence_rate_limited_total',
    help: 'Requests answered 429, by limiter kind',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const count = (route: string, req: IncomingMessage, res: ServerResponse & { validationType?: string }) => {
    requests.inc({
      route,
      method: req.method ?? 'GET',
      status: String(res.statusCode),
      validation_type:
        res.validationType ?? rejections.get(req.headers) ?? (res.statusCode < 400 ? 'none' : 'unknown'),
    });
  };
  const middleware: RequestHandler = (req, res, next) => {
    res.on('finish', () => {
      // route pattern, never the raw path (bounded label cardinality)
      count(String((req.route as { path?: string } | undefined)?.path ?? 'unmatched'), req, res);
    });
    next();
  };
  const countedAs =
    (route: string): NodeHandler =>
    (req, res, next) => {
      res.on('finish', () => count(route, req, res));
      next();
    };
  return {
    registry,
    requests,
    verifyLatency,
    nonceStoreSize,
    recordsStored,
    rateLimited,
    middleware,
    countedAs,
  };
}
