/**
 * The verifier's Express middleware (`geofence.express.nonce`, `.collector`, `.gateway`), mounted
 * with the reference server's additions: a durable record sink that also keeps the signature headers
 * (for offline re-verification), rejection logging, and Prometheus latency/validation_type labels.
 * All verification (SPEC §6.4) happens in `@geofence/verifier`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  type AcceptedRecord,
  type GeofenceError,
  type GeofenceHandler,
  type GeofenceIncomingMessage,
  type GeoPolicy,
  geofence,
  type NonceStore,
  type Registry,
  type VerifierRequest,
  WORKLOAD_GEO_ID_HEADER,
} from '@geofence/verifier';
import type { Logger } from '../logger.js';
import type { NodeHandler } from './http.js';
import { noteRejection, type ServiceMetrics } from './prom.js';

/**
 * Location quality of an accepted record, by the verifier's own rule: the payload's reading, else the
 * verified Workload-Geo-ID header's `client_workload_location_quality`.
 */
export function locationQualityOf(rec: AcceptedRecord): string | undefined {
  return rec.payload.location?.quality ?? headerQuality(rec.headers[WORKLOAD_GEO_ID_HEADER]);
}

function headerQuality(value: string | undefined): string | undefined {
  if (!value) return undefined;
  try {
    const q = (JSON.parse(value) as { client_workload_location_quality?: unknown })
      .client_workload_location_quality;
    return typeof q === 'string' ? q : undefined;
  } catch {
    return undefined;
  }
}

interface Common {
  registry: Registry;
  metrics: ServiceMetrics;
  log: Logger;
  rejectedBy: 'collector' | 'gateway';
  clockSkewSeconds: number;
}

function onReject(c: Common, route: string) {
  return (err: GeofenceError, vr: VerifierRequest, requestId: string, clientRequestId?: string) => {
    const ids = clientRequestId
      ? { request_id: requestId, client_request_id: clientRequestId }
      : { request_id: requestId };
    // The middleware reports with the request's own header object: label the response for Prometheus.
    noteRejection(vr.headers as IncomingHttpHeaders, err.validationType);
    if (err.validationType === 'internal') c.log.error({ err, ...ids, route }, 'verification error');
    else {
      c.log.info(
        {
          ...ids,
          route,
          validation_type: err.validationType,
          error: err.error,
          details: err.details,
        },
        'rejected',
      );
    }
  };
}

/**
 * Mounts a verifier middleware: times it for the latency histogram and labels rejections. `next` is
 * only reached by the gateway middleware (verified → forward).
 */
function mount(c: Common, route: string, mw: GeofenceHandler): NodeHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    let observed = false;
    const observe = (outcome: 'accepted' | 'rejected') => {
      if (observed) return;
      observed = true;
      c.metrics.verifyLatency.observe({ route, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    res.on('finish', () => observe(res.statusCode < 400 ? 'accepted' : 'rejected'));
    mw(req as unknown as GeofenceIncomingMessage, res, (err?: unknown) => {
      observe('accepted');
      next(err);
    });
  };
}

/** `GET /nonce` on the collector (`geofence.express.nonce`). */
export function nonceRoute(
  c: Common & { nonces: NonceStore; maxNonceBatch?: number | undefined },
): NodeHandler {
  return mount(
    c,
    '/nonce',
    geofence.express.nonce({
      registry: c.registry,
      nonces: c.nonces,
      clockSkewSeconds: c.clockSkewSeconds,
      ...(c.maxNonceBatch !== undefined ? { maxNonceBatch: c.maxNonceBatch } : {}),
      rejectedBy: c.rejectedBy,
      onReject: onReject(c, '/nonce'),
    }),
  );
}

/** `POST /metrics` on the collector (`geofence.express.collector`): verify, store durably, then 200. */
export function metricsRoute(
  c: Common & {
    nonces: NonceStore;
    bodyLimitBytes: number;
    globalGeoPolicy?: GeoPolicy | undefined;
    maxSpeedKmh?: number | false;
    accept(rec: AcceptedRecord): Promise<string>;
    /** Called with every rejection and the request it rejected (after logging). */
    onRejected?: (err: GeofenceError, vr: VerifierRequest) => void;
  },
): NodeHandler {
  const reject = onReject(c, '/metrics');
  const mw = geofence.express.collector({
    registry: c.registry,
    nonces: c.nonces,
    clockSkewSeconds: c.clockSkewSeconds,
    bodyLimit: c.bodyLimitBytes,
    ...(c.globalGeoPolicy ? { geoPolicy: c.globalGeoPolicy } : {}),
    ...(c.maxSpeedKmh === undefined ? {} : { maxSpeedKmh: c.maxSpeedKmh }),
    rejectedBy: c.rejectedBy,
    onReject: (err, vr, rid, clientRid) => {
      reject(err, vr, rid, clientRid);
      c.onRejected?.(err, vr);
    },
    // Runs after every check passed; the 200 is only sent once this durable write returned.
    onAccept: (rec) => c.accept(rec),
  });
  return mount(c, '/metrics', mw);
}

/** Gateway switches (`GATEWAY_VALIDATE_*`). */
export interface GatewayChecks {
  publicKeyHash: boolean;
  signature: boolean;
  geolocation: boolean;
}

/**
 * Gateway first layer (`geofence.express.gateway`) for `GET /nonce` and `POST /metrics`: rejects with
 * problem+json, or strips the signature headers, sets `req.rawBody` and calls `next()` (the proxy).
 */
export function gatewayCheck(
  c: Common & { validate: GatewayChecks; bodyLimitBytes: number; globalGeoPolicy?: GeoPolicy | undefined },
  route: '/nonce' | '/metrics',
): NodeHandler {
  return mount(
    c,
    route,
    geofence.express.gateway({
      registry: c.registry,
      validatePublicKeyHash: c.validate.publicKeyHash,
      validateSignature: c.validate.signature,
      validateGeolocation: c.validate.geolocation,
      clockSkewSeconds: c.clockSkewSeconds,
      bodyLimit: c.bodyLimitBytes,
      ...(c.globalGeoPolicy ? { geoPolicy: c.globalGeoPolicy } : {}),
      rejectedBy: c.rejectedBy,
      onReject: onReject(c, route),
    }),
  );
}
