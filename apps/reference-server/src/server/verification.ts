/**
 * The only place where the reference server calls the verifier's request pipeline (SPEC §6.4):
 * nonce issuance, collector verification of `POST /metrics`, and the gateway's first-layer checks.
 * Everything here delegates to `@geofence/verifier`; this module only moves bytes between Express and
 * the pipeline, times the verification for Prometheus, and hands accepted messages to the record store.
 */
import {
  GeofenceError,
  type GeoPolicy,
  issueNonce,
  type NonceStore,
  type Registry,
  type VerifierRequest,
  verifyAtGateway,
  verifyMetrics,
} from '@geofence/verifier';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../logger.js';
import { requestIdOf, sendProblem } from './http.js';
import type { ServiceMetrics } from './prom.js';

/** Headers kept with a stored record (what offline re-verification needs). */
const KEPT_HEADERS = ['content-type', 'content-digest', 'signature-input', 'signature', 'workload-geo-id'];

/** An accepted message, as handed to the record store. */
export interface AcceptedMessage {
  agentName: string;
  keyid: string;
  rawBody: Buffer;
  headers: Record<string, string>;
  metrics: unknown;
  checks: string[];
}

interface Common {
  registry: Registry;
  metrics: ServiceMetrics;
  log: Logger;
  rejectedBy: 'collector' | 'gateway';
  clockSkewSeconds: number;
}

function pipelineRequest(req: Request, rawBody?: Buffer): VerifierRequest {
  return {
    method: req.method,
    url: req.originalUrl,
    headers: req.headers,
    ...(rawBody ? { rawBody: new Uint8Array(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength) } : {}),
  };
}

const seconds = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e9;

function reject(c: Common, req: Request, res: Response, err: unknown, route: string, started: bigint): void {
  const gf = GeofenceError.from(err);
  if (gf.validationType === 'internal')
    c.log.error({ err, request_id: requestIdOf(req) }, 'verification error');
  else {
    c.log.info(
      {
        request_id: requestIdOf(req),
        route,
        validation_type: gf.validationType,
        error: gf.error,
        details: gf.details,
      },
      'rejected',
    );
  }
  c.metrics.verifyLatency.observe({ route, outcome: 'rejected' }, seconds(started));
  sendProblem(req, res, gf, c.rejectedBy);
}

const tooLarge = (limit: number) =>
  new GeofenceError('request_validation', 'Payload too large', {
    status: 413,
    details: { limit_bytes: limit },
  });

/** Reads the body up to `limit` bytes; stops reading (413) as soon as the limit is crossed. */
async function readRaw(req: Request, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(req.body)) return req.body;
  if (Number(req.headers['content-length'] ?? '0') > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** `GET /nonce` on the collector. */
export function nonceRoute(c: Common & { nonces: NonceStore }): RequestHandler {
  return async (req, res) => {
    const started = process.hrtime.bigint();
    try {
      const verdict = await issueNonce(pipelineRequest(req), {
        registry: c.registry,
        nonces: c.nonces,
        clockSkewSeconds: c.clockSkewSeconds,
      });
      c.metrics.verifyLatency.observe({ route: '/nonce', outcome: 'accepted' }, seconds(started));
      res.setHeader('cache-control', 'no-store');
      res.json(verdict.body);
    } catch (err) {
      reject(c, req, res, err, '/nonce', started);
    }
  };
}

/** `POST /metrics` on the collector: verify, then store durably, then 200. */
export function metricsRoute(
  c: Common & {
    nonces: NonceStore;
    bodyLimitBytes: number;
    globalGeoPolicy?: GeoPolicy | undefined;
    accept(msg: AcceptedMessage): Promise<string>;
    onRejected?: () => void;
  },
): RequestHandler {
  return async (req, res) => {
    const started = process.hrtime.bigint();
    try {
      const raw = await readRaw(req, c.bodyLimitBytes);
      const verdict = await verifyMetrics(pipelineRequest(req, raw), {
        registry: c.registry,
        nonces: c.nonces,
        clockSkewSeconds: c.clockSkewSeconds,
        bodyLimit: c.bodyLimitBytes,
        ...(c.globalGeoPolicy ? { geoPolicy: c.globalGeoPolicy } : {}),
        // Runs after every check passed; the 200 is only sent once this durable write returned.
        onAccept: (rec) => {
          const headers: Record<string, string> = {};
          for (const h of KEPT_HEADERS) {
            const v = req.headers[h];
            if (typeof v === 'string') headers[h] = v;
          }
          return c.accept({
            agentName: rec.agent_name,
            keyid: rec.keyid,
            rawBody: raw,
            headers,
            metrics: rec.payload.metrics,
            checks: rec.verdict.checks,
          });
        },
      });
      c.metrics.verifyLatency.observe({ route: '/metrics', outcome: 'accepted' }, seconds(started));
      res.json(verdict.body);
    } catch (err) {
      c.onRejected?.();
      reject(c, req, res, err, '/metrics', started);
    }
  };
}

/** Gateway switches (`GATEWAY_VALIDATE_*`). */
export interface GatewayChecks {
  publicKeyHash: boolean;
  signature: boolean;
  geolocation: boolean;
}

type GatewayCtx = Common & {
  validate: GatewayChecks;
  bodyLimitBytes: number;
  globalGeoPolicy?: GeoPolicy | undefined;
};

function gatewayOptions(c: GatewayCtx) {
  return {
    registry: c.registry,
    validatePublicKeyHash: c.validate.publicKeyHash,
    validateSignature: c.validate.signature,
    validateGeolocation: c.validate.geolocation,
    clockSkewSeconds: c.clockSkewSeconds,
    bodyLimit: c.bodyLimitBytes,
    ...(c.globalGeoPolicy ? { geoPolicy: c.globalGeoPolicy } : {}),
  };
}

/** Gateway first layer for `GET /nonce` (allowlist, and the signature when present). */
export function gatewayNonceCheck(c: GatewayCtx): RequestHandler {
  return async (req, res, next) => {
    const started = process.hrtime.bigint();
    try {
      await verifyAtGateway(pipelineRequest(req), gatewayOptions(c));
      c.metrics.verifyLatency.observe({ route: '/nonce', outcome: 'accepted' }, seconds(started));
      next();
    } catch (err) {
      reject(c, req, res, err, '/nonce', started);
    }
  };
}

/** Gateway first layer for `POST /metrics` (expects the raw body in `req.body`). */
export function gatewayMetricsCheck(c: GatewayCtx): RequestHandler {
  return async (req, res, next) => {
    const started = process.hrtime.bigint();
    try {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      await verifyAtGateway(pipelineRequest(req, raw), gatewayOptions(c));
      c.metrics.verifyLatency.observe({ route: '/metrics', outcome: 'accepted' }, seconds(started));
      next();
    } catch (err) {
      reject(c, req, res, err, '/metrics', started);
    }
  };
}
