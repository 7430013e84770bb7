/**
 * Forwarding from the gateway to the collector over an undici keep-alive pool. Only explicit routes
 * call it (no catch-all). Request headers are forwarded from an allowlist; in policy-enforcement mode
 * the verifier's `headersStrippedByGateway` decides what is removed (the signature of `POST /metrics`,
 * never that of `GET /nonce`: SPEC §6.4, §16). Upstream failures map to
 * problem+json: connection refused/reset → 503 (with Retry-After), timeout → 504, anything else → 502.
 */
import { GeofenceError, headersStrippedByGateway } from '@geofence/verifier';
import type { Request, Response } from 'express';
import { BalancedPool, type Dispatcher, Pool } from 'undici';

/** Headers passed on to the collector (everything else, including Authorization and Cookie, is dropped). */
export const FORWARDED_HEADERS = [
  'content-type',
  'content-digest',
  'signature',
  'signature-input',
  'workload-geo-id',
  'accept',
  'user-agent',
];

/** Response headers passed back to the client. */
const RETURNED_HEADERS = ['content-type', 'retry-after', 'x-request-id', 'cache-control'];

/** Options of {@link Upstream}. */
export interface UpstreamOptions {
  /** Collector base URL; several (comma-separated) are load-balanced (collector replicas). */
  url: string;
  ca?: string | undefined;
  clientCert?: { cert: string; key: string } | undefined;
  insecureSkipVerify: boolean;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  timeoutMs: number;
  connections: number;
}

/** What the last upstream exchange looked like (for `/gateway/status`). */
export interface UpstreamState {
  lastStatus: number | null;
  lastError: string | null;
  lastAt: string | null;
  failures: number;
}

function mapError(err: unknown): GeofenceError {
  const code = (err as { code?: string }).code ?? '';
  if (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    (err as Error).name === 'TimeoutError'
  ) {
    return new GeofenceError('upstream', 'Collector timed out', { status: 504, cause: err });
  }
  if (
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'EHOSTUNREACH' ||
    code === 'UND_ERR_SOCKET' ||
    code === 'UND_ERR_CLOSED'
  ) {
    return new GeofenceError('upstream', 'Collector unavailable', { status: 503, retryAfter: 2, cause: err });
  }
  return new GeofenceError('upstream', 'Bad gateway', { status: 502, cause: err });
}

/** The collector as seen by the gateway. */
export class Upstream {
  private readonly pool: Dispatcher;
  readonly state: UpstreamState = { lastStatus: null, lastError: null, lastAt: null, failures: 0 };

  constructor(readonly opts: UpstreamOptions) {
    const origins = opts.url
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
      .map((x) => new URL(x).origin);
    const poolOptions: Pool.Options = {
      connections: opts.connections,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connectTimeout: Math.min(opts.timeoutMs, 5000),
      keepAliveTimeout: 4000,
      connect: {
        ...(opts.ca ? { ca: opts.ca } : {}),
        ...(opts.clientCert ? { cert: opts.clientCert.cert, key: opts.clientCert.key } : {}),
        rejectUnauthorized: !opts.insecureSkipVerify,
        minVersion: opts.minVersion,
      },
    };
    this.pool =
      origins.length > 1
        ? new BalancedPool(origins, poolOptions)
        : new Pool(origins[0] as string, poolOptions);
  }

  /**
   * Forwards `req` (whose raw body is `body`) and writes the collector's answer to `res`.
   * Throws a {@link GeofenceError} of type `upstream` when the collector cannot answer.
   */
  async forward(req: Request, res: Response, body: Buffer | undefined, enforcing: boolean): Promise<void> {
    const headers: Record<string, string> = {};
    const stripped = enforcing ? headersStrippedByGateway(req.method, req.originalUrl) : [];
    for (const name of FORWARDED_HEADERS) {
      if (stripped.includes(name)) continue;
      const v = req.headers[name];
      if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(', ') : v;
    }
    const prior = req.headers['x-forwarded-for'];
    const client = req.socket.remoteAddress ?? 'unknown';
    // Only our own hop is appended; the collector trusts X-Forwarded-For only from configured proxies.
    headers['x-forwarded-for'] = prior
      ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client}`
      : client;
    if (req.requestId) headers['x-gateway-request-id'] = req.requestId;
    this.state.lastAt = new Date().toISOString();
    try {
      const send = () =>
        this.pool.request({
          path: req.originalUrl,
          method: req.method as 'GET' | 'POST',
          headers,
          ...(body && body.length > 0 ? { body } : {}),
        });
      // A refused connection never reached a collector: try the next replica once. (Even for
      // POST /metrics a retry is safe — the nonce makes a message acceptable at most once.)
      const r = await send().catch((err: unknown) => {
        if ((err as { code?: string }).code === 'ECONNREFUSED') return send();
        throw err;
      });
      const payload = Buffer.from(await r.body.arrayBuffer());
      this.state.lastStatus = r.statusCode;
      this.state.lastError = null;
      res.status(r.statusCode);
      for (const name of RETURNED_HEADERS) {
        const v = r.headers[name];
        if (v !== undefined) res.setHeader(name === 'x-request-id' ? 'x-collector-request-id' : name, v);
      }
      if (r.statusCode >= 400 && String(r.headers['content-type'] ?? '').includes('problem+json')) {
        try {
          res.validationType = (
            JSON.parse(payload.toString('utf8')) as { validation_type?: string }
          ).validation_type;
        } catch {
          // not JSON after all: metrics label stays "unknown"
        }
      }
      res.end(payload);
    } catch (err) {
      this.state.failures += 1;
      this.state.lastStatus = null;
      this.state.lastError = (err as { code?: string }).code ?? (err as Error).name;
      throw mapError(err);
    }
  }

  /** Closes the pool. */
  async close(): Promise<void> {
    await this.pool.close();
  }
}
