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
}

function pipelineRequest(req: Request, rawBody?: Buffer) {
  return {
    method: req.method,
    url: req.originalUrl,
    headers: req.headers,
    ...(rawBody ? { rawBody: new Uint8Array(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength) } : {}),
  };
}

function reject(c: Common, req: Request, res: Response, err: unknown, route: string, started: bigint): void {
  const gf = GeofenceError.from(err);
  if (gf.validationType === 'internal')
    c.log.error({ err, request_id: requestIdOf(req) }, 'verification error');
  else
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
  c.metrics.verifyLatency.observe(
    { route, outcome: 'rejected' },
    Number(process.hrtime.bigint() - started) / 1e9,
  );
  sendProblem(req, res, gf, c.rejectedBy);
}

async function readRaw(req: Request, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(req.body)) return req.body;
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) {
    throw new GeofenceError('request_validation', 'Payload too large', {
      status: 413,
      details: { limit_bytes: limit },
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    // Stop reading as soon as the limit is crossed: a 2 MiB body is never buffered whole.
    if (size > limit) {
      req.pause();
      throw new GeofenceError('request_validation', 'Payload too large', {
        status: 413,
        details: { limit_bytes: limit },
      });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** `GET /nonce` on the collector. */
export function nonceRoute(c: Common & { nonces: NonceStore }): RequestHandler {
  return async (req, res) => {
    const started = process.hrtime.bigint();
    try {
      const issued = await issueNonce(pipelineRequest(req), { registry: c.registry, nonces: c.nonces });
      c.metrics.verifyLatency.observe(
        { route: '/nonce', outcome: 'accepted' },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
      res.setHeader('cache-control', 'no-store');
      res.json(issued);
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
    clockSkewSeconds: number;
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
        maxBodyBytes: c.bodyLimitBytes,
        ...(c.globalGeoPolicy ? { globalGeoPolicy: c.globalGeoPolicy } : {}),
      });
      c.metrics.verifyLatency.observe(
        { route: '/metrics', outcome: 'accepted' },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
      const headers: Record<string, string> = {};
      for (const h of KEPT_HEADERS) {
        const v = req.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      const recordId = await c.accept({
        agentName: verdict.agent.agent_name,
        keyid: verdict.agent.keyid,
        rawBody: raw,
        headers,
        metrics: verdict.payload.metrics,
        checks: verdict.checks ?? [],
      });
      res.json({
        status: 'success',
        message: 'Metrics received and verified successfully',
        record_id: recordId,
      });
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
  clockSkewSeconds: number;
  globalGeoPolicy?: GeoPolicy | undefined;
};

/** Gateway first layer for `GET /nonce` (allowlist, and the signature when present). */
export function gatewayNonceCheck(c: GatewayCtx): RequestHandler {
  return async (req, res, next) => {
    const started = process.hrtime.bigint();
    try {
      await verifyAtGateway(pipelineRequest(req), {
        registry: c.registry,
        validate: c.validate,
        clockSkewSeconds: c.clockSkewSeconds,
      });
      c.metrics.verifyLatency.observe(
        { route: '/nonce', outcome: 'accepted' },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
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
      await verifyAtGateway(pipelineRequest(req, raw), {
        registry: c.registry,
        validate: c.validate,
        clockSkewSeconds: c.clockSkewSeconds,
        ...(c.globalGeoPolicy ? { globalGeoPolicy: c.globalGeoPolicy } : {}),
      });
      c.metrics.verifyLatency.observe(
        { route: '/metrics', outcome: 'accepted' },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
      next();
    } catch (err) {
      reject(c, req, res, err, '/metrics', started);
    }
  };
}
