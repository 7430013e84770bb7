/**
 * The one forwarder from a gateway to its collector(s): an undici keep-alive pool (balanced over
 * replicas), an allowlist of forwarded request headers, the one strip rule of
 * {@link headersStrippedByGateway} when enforcing, and one mapping of upstream failures to SPEC §7
 * problems: refused/reset → 503 with `Retry-After`, timeout → 504, anything else → 502. The body is
 * forwarded as the bytes received, never re-serialised.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { BalancedPool, type Dispatcher, Pool } from 'undici';
import { GeofenceError } from '../errors.js';
import { headersStrippedByGateway } from './gateway-headers.js';

/**
 * Request headers passed on to the collector; everything else (`Authorization`, `Cookie`, …) is
 * dropped.
 * @public
 */
export const FORWARDED_REQUEST_HEADERS: readonly string[] = Object.freeze([
  'content-type',
  'content-digest',
  'signature',
  'signature-input',
  'workload-geo-id',
  'accept',
  'user-agent',
]);

/** Response headers passed back; the collector's request id is returned under its own name. */
const RETURNED_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'content-type',
  'retry-after': 'retry-after',
  'cache-control': 'cache-control',
  'x-request-id': 'x-collector-request-id',
});

/**
 * Options of {@link createForwarder}.
 * @public
 */
export interface ForwarderOptions {
  /** Collector base URL; several, comma-separated, are load-balanced (collector replicas). */
  target: string;
  /** PEM CA the collector's certificate must chain to (default: Node's roots). */
  ca?: string | undefined;
  /** Client certificate presented when the collector asks for one (mutual TLS). */
  clientCert?: { cert: string; key: string } | undefined;
  /** Do not verify the collector certificate (never in production). Default false. */
  insecureSkipVerify?: boolean;
  /** Minimum TLS version (default `TLSv1.2`). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Headers and body timeout in milliseconds (default 10 000) → 504 `upstream`. */
  timeoutMs?: number;
  /** Keep-alive connections per collector (default 16). */
  connections?: number;
}

/**
 * A request to forward: its method, path with query, headers as received and body bytes.
 * @public
 */
export interface ForwardRequest {
  /** HTTP method, forwarded as is. */
  method: string;
  /** Path and query, e.g. `/metrics` or `/nonce?public_key_hash=…`. */
  url: string;
  /** Request headers as received; only {@link FORWARDED_REQUEST_HEADERS} are passed on. */
  headers: IncomingHttpHeaders;
  /** Body bytes as received (forwarded unchanged). */
  body?: Uint8Array | undefined;
  /** The client's address, appended to `X-Forwarded-For`. */
  clientAddress?: string | undefined;
  /** Our request id, sent as `X-Gateway-Request-Id`. */
  requestId?: string | undefined;
  /** Remove what {@link headersStrippedByGateway} names (policy-enforcement mode). */
  enforcing: boolean;
}

/**
 * The collector's answer, relayed byte for byte.
 * @public
 */
export interface ForwardedAnswer {
  /** The collector's status. */
  status: number;
  /** The returned headers (content type, `Retry-After`, cache control, `X-Collector-Request-Id`). */
  headers: Record<string, string>;
  /** The collector's body bytes, unchanged. */
  body: Buffer;
  /** `validation_type` of a problem answer, for metrics labels. */
  validationType?: string | undefined;
}

/**
 * What the last upstream exchange looked like (for status pages).
 * @public
 */
export interface ForwarderState {
  /** Status of the last answer received (null after a failure or before the first request). */
  lastStatus: number | null;
  /** Error code of the last failure (null after a success). */
  lastError: string | null;
  /** ISO time of the last attempt. */
  lastAt: string | null;
  /** Failures since start. */
  failures: number;
}

/**
 * A gateway's connection to its collector(s).
 * @public
 */
export interface Forwarder {
  /** The configured target(s). */
  readonly target: string;
  /** Last exchange (mutated in place). */
  readonly state: ForwarderState;
  /** Forwards `req`; throws a {@link GeofenceError} of type `upstream` when no collector answers. */
  forward(req: ForwardRequest): Promise<ForwardedAnswer>;
  /** Closes the pool. */
  close(): Promise<void>;
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function upstreamError(err: unknown): GeofenceError {
  const code = (err as { code?: string }).code ?? '';
  if (TIMEOUT_CODES.has(code) || (err as Error).name === 'TimeoutError') {
    return new GeofenceError('upstream', 'Collector timed out', { status: 504, cause: err });
  }
  if (UNAVAILABLE_CODES.has(code)) {
    return new GeofenceError('upstream', 'Collector unavailable', { status: 503, retryAfter: 2, cause: err });
  }
  return new GeofenceError('upstream', 'Bad gateway', { status: 502, cause: err });
}

function targetOrigins(target: unknown): string[] {
  if (typeof target !== 'string' || target.trim() === '') {
    throw new TypeError('@geofence/verifier forwarder: option target must be an http(s) URL');
  }
  return target
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => {
      let url: URL;
      try {
        url = new URL(x);
      } catch {
        throw new TypeError(
          `@geofence/verifier forwarder: option target must be an absolute URL (http or https); ${JSON.stringify(x)} is not one`,
        );
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new TypeError('@geofence/verifier forwarder: option target must be an http(s) URL');
      }
      return url.origin;
    });
}

function problemValidationType(status: number, contentType: string, body: Buffer): string | undefined {
  if (status < 400 || !contentType.includes('problem+json')) return undefined;
  try {
    const v = (JSON.parse(body.toString('utf8')) as { validation_type?: unknown }).validation_type;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined; // not JSON after all: the label stays unknown
  }
}

/**
 * Build the forwarder of a gateway.
 * @example
 * ```ts
 * const forwarder = createForwarder({ target: 'https://collector.internal:8444', ca });
 * ```
 * @public
 */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const origins = targetOrigins(options.target);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const poolOptions: Pool.Options = {
    connections: options.connections ?? 16,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connectTimeout: Math.min(timeoutMs, 5000),
    keepAliveTimeout: 4000,
    connect: {
      ...(options.ca ? { ca: options.ca } : {}),
      ...(options.clientCert ? { cert: options.clientCert.cert, key: options.clientCert.key } : {}),
      rejectUnauthorized: options.insecureSkipVerify !== true,
      minVersion: options.minVersion ?? 'TLSv1.2',
    },
  };
  const pool: Dispatcher =
    origins.length > 1 ? new BalancedPool(origins, poolOptions) : new Pool(origins[0]!, poolOptions);
  const state: ForwarderState = { lastStatus: null, lastError: null, lastAt: null, failures: 0 };

  return {
    target: options.target,
    state,
    async forward(req) {
      const stripped = req.enforcing ? headersStrippedByGateway(req.method, req.url) : [];
      const headers: Record<string, string> = {};
      for (const name of FORWARDED_REQUEST_HEADERS) {
        if (stripped.includes(name)) continue;
        const v = req.headers[name];
        if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(', ') : v;
      }
      const prior = req.headers['x-forwarded-for'];
      const client = req.clientAddress ?? 'unknown';
      // Only our own hop is appended; the collector trusts X-Forwarded-For only from configured proxies.
      headers['x-forwarded-for'] = prior
        ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client}`
        : client;
      if (req.requestId) headers['x-gateway-request-id'] = req.requestId;
      state.lastAt = new Date().toISOString();
      const body = req.body && req.body.byteLength > 0 ? req.body : undefined;
      const send = () =>
        pool.request({
          path: req.url,
          method: req.method as Dispatcher.HttpMethod,
          headers,
          ...(body ? { body } : {}),
        });
      try {
        // A refused connection never reached a collector: try the next replica once. (Even for
        // POST /metrics a retry is safe — the nonce makes a message acceptable at most once.)
        const r = await send().catch((err: unknown) => {
          if ((err as { code?: string }).code === 'ECONNREFUSED') return send();
          throw err;
        });
        const payload = Buffer.from(await r.body.arrayBuffer());
        state.lastStatus = r.statusCode;
        state.lastError = null;
        const returned: Record<string, string> = {};
        for (const [name, as] of Object.entries(RETURNED_HEADERS)) {
          const v = r.headers[name];
          if (v !== undefined) returned[as] = Array.isArray(v) ? v.join(', ') : v;
        }
        return {
          status: r.statusCode,
          headers: returned,
          body: payload,
          validationType: problemValidationType(r.statusCode, returned['content-type'] ?? '', payload),
        };
      } catch (err) {
        state.failures += 1;
        state.lastStatus = null;
        state.lastError = (err as { code?: string }).code ?? (err as Error).name;
        throw upstreamError(err);
      }
    },
    close: () => pool.close(),
  };
}
