import {
  NONCE_COUNT_PARAMETER,
  type NonceResponse,
  nonceBatchResponseSchema,
  nonceResponseSchema,
} from '@geofence/protocol';
import { type Dispatcher, Pool } from 'undici';
import { AgentError, GeofenceRejection } from './errors.js';

/** TLS settings of the connection to the gateway. */
export interface TlsOptions {
  /** PEM CA certificate(s) that issued the gateway's certificate (default: the system store). */
  ca?: string | string[];
  /** Development only: accept any certificate. Logged as a warning when set. */
  insecureSkipVerify?: boolean;
}

/**
 * A failure worth retrying: the request may not have been processed (network, timeout, 5xx), or the
 * server asked to come back later (429, with the {@link GeofenceRejection} as `cause`).
 */
export class RetriableError extends AgentError<'retriable'> {
  /** HTTP status for 5xx answers. */
  readonly status: number | undefined;
  /** Server `Retry-After`, in ms. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super('retriable', message, { cause: options.cause });
    this.name = 'RetriableError';
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Connection settings of {@link Transport}. */
export interface TransportOptions {
  gateway: URL;
  tls: TlsOptions;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  connections: number;
  /**
   * Hears the time of each exchange on the wire: from handing the request to the HTTP client until
   * the last byte of the answer was read (HTTP/1.1 framing, TLS, the round trip and the gateway's
   * own processing); parsing the answer is not part of it.
   */
  onWire?: (ms: number) => void;
}

interface Answer {
  status: number;
  body: unknown;
  retryAfterMs: number | undefined;
}

/**
 * HTTP(S) to the gateway over one undici keep-alive pool. Turns every answer into either a value,
 * a {@link GeofenceRejection} (4xx) or a {@link RetriableError} (network, timeout, 5xx).
 */
export class Transport {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly onWire: ((ms: number) => void) | undefined;

  constructor(opts: TransportOptions) {
    const { gateway, tls } = opts;
    this.onWire = opts.onWire;
    this.basePath = gateway.pathname.replace(/\/+$/, '');
    this.pool = new Pool(gateway.origin, {
      connections: opts.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: opts.connectTimeoutMs,
      headersTimeout: opts.requestTimeoutMs,
      bodyTimeout: opts.requestTimeoutMs,
      connect: {
        ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
        rejectUnauthorized: tls.insecureSkipVerify !== true,
        minVersion: 'TLSv1.2',
      },
    });
  }

  /** Request path (with the gateway's base path) of an endpoint such as `/metrics`. */
  path(endpoint: string): string {
    return `${this.basePath}${endpoint}`;
  }

  /**
   * `GET /nonce?public_key_hash=<keyid>` (SPEC §6.1), optionally RFC 9421-signed: `sign` gets the
   * request target (path and query) and returns the signature headers.
   */
  async nonce(
    keyid: string,
    sign?: (target: string) => Promise<Record<string, string>>,
  ): Promise<NonceResponse> {
    const [first] = await this.nonces(keyid, 1, sign);
    return first as NonceResponse;
  }

  /**
   * `GET /nonce?public_key_hash=<keyid>` for `count` nonces: `&count=n` when `count > 1` (SPEC §16,
   * a signed request only), answered `{nonces, expires_in}`; a collector without batches answers one
   * nonce, which is returned alone.
   */
  async nonces(
    keyid: string,
    count: number,
    sign?: (target: string) => Promise<Record<string, string>>,
  ): Promise<NonceResponse[]> {
    const query = count > 1 ? `&${NONCE_COUNT_PARAMETER}=${count}` : '';
    const target = `${this.path('/nonce')}?public_key_hash=${encodeURIComponent(keyid)}${query}`;
    const a = await this.exchange('GET', target, sign ? await sign(target) : {});
    const one = nonceResponseSchema.safeParse(a.body);
    if (one.success) return [one.data];
    const batch = nonceBatchResponseSchema.safeParse(a.body);
    if (batch.success) {
      return batch.data.nonces.map((n) => ({ ...n, expires_in: batch.data.expires_in }));
    }
    throw new RetriableError('malformed /nonce answer from the gateway');
  }

  /** `POST /metrics`; returns the record id of the accepted message. */
  async postMetrics(path: string, headers: Record<string, string>, body: Uint8Array): Promise<string> {
    const a = await this.exchange('POST', path, headers, body);
    const b = a.body as { record_id?: unknown } | undefined;
    if (!b || typeof b.record_id !== 'string' || b.record_id.length === 0) {
      // A 2xx without a record id: the collector may have stored it; do not resend blindly.
      throw new GeofenceRejection(a.status, { error: 'accepted answer without record_id' });
    }
    return b.record_id;
  }

  /**
   * `POST` a JSON body to an endpoint (e.g. `/enroll`) and return the status and parsed answer
   * whatever the status; only network failures throw ({@link RetriableError}).
   */
  async postJson(endpoint: string, json: unknown): Promise<{ status: number; body: unknown }> {
    const a = await this.raw(
      'POST',
      this.path(endpoint),
      { 'content-type': 'application/json' },
      Buffer.from(JSON.stringify(json), 'utf8'),
    );
    return { status: a.status, body: a.body };
  }

  private async exchange(
    method: 'GET' | 'POST',
    path: string,
    headers: Record<string, string>,
    body?: Uint8Array,
  ): Promise<Answer> {
    const a = await this.raw(method, path, headers, body);
    const { status, retryAfterMs } = a;
    if (status >= 200 && status < 300) return a;
    // 429 is the one 4xx that says "later", not "no": retried after Retry-After like a 5xx.
    if (status === 429) {
      throw new RetriableError(`${method} ${path}: HTTP 429`, {
        status,
        ...(retryAfterMs ? { retryAfterMs } : {}),
        cause: new GeofenceRejection(status, a.body),
      });
    }
    if (status >= 400 && status < 500) throw new GeofenceRejection(status, a.body);
    throw new RetriableError(`${method} ${path}: HTTP ${status}`, {
      status,
      ...(retryAfterMs ? { retryAfterMs } : {}),
    });
  }

  private async raw(
    method: 'GET' | 'POST',
    path: string,
    headers: Record<string, string>,
    body?: Uint8Array,
  ): Promise<Answer> {
    const t0 = performance.now();
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      try {
        res = await this.pool.request({
          method,
          path,
          headers: { accept: 'application/json', ...headers },
          body,
        });
      } catch (err) {
        throw new RetriableError(`${method} ${path}: ${(err as Error).message}`, { cause: err });
      }
      try {
        text = await readLimited(res.body);
      } catch (err) {
        throw new RetriableError(`${method} ${path}: reading the answer failed`, { cause: err });
      }
    } finally {
      this.onWire?.(performance.now() - t0);
    }
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return {
      status: res.statusCode,
      body: parsed,
      retryAfterMs: parseRetryAfter(res.headers['retry-after']),
    };
  }

  /** Closes the pool (waits for in-flight requests). */
  async close(): Promise<void> {
    await this.pool.close();
  }
}

async function readLimited(body: AsyncIterable<Uint8Array> & { destroy?: () => void }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) {
      body.destroy?.();
      throw new Error('answer larger than 1 MiB');
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseRetryAfter(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return undefined;
  const secs = Number(s);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(s);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}
