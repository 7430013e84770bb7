/**
 * Gateway header log (the original `logs/gateway_headers.log`): one JSON line per request with the
 * policy-relevant headers, secrets redacted (Authorization, Cookie, admin tokens; the `nonce` parameter
 * of Signature-Input is replaced by a short hash), rotated by size (`file`, `file.1` … `file.N`).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

/** Headers recorded (lowercase), as in the original log. */
export const LOGGED_HEADERS = [
  'workload-geo-id',
  'signature',
  'signature-input',
  'content-type',
  'content-digest',
  'content-length',
  'user-agent',
  'x-forwarded-for',
  'x-real-ip',
  'host',
  'accept',
  'authorization',
  'cookie',
];

const SECRET_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization', 'x-api-key']);
const MAX_VALUE = 4096;

/** Redacts one header value for logging. */
export function redactHeader(name: string, value: string | undefined): string | null {
  if (value === undefined) return null;
  if (SECRET_HEADERS.has(name)) return '[redacted]';
  let v = value.length > MAX_VALUE ? `${value.slice(0, MAX_VALUE)}…[truncated]` : value;
  if (name === 'signature-input') {
    // RFC 8941 allows the nonce as a quoted string or as a token; both forms are single-use secrets.
    v = v.replace(/nonce=(?:"([^"]*)"|([^;,\s)]*))/g, (_m, quoted?: string, token?: string) => {
      const h = createHash('sha256')
        .update(quoted ?? token ?? '')
        .digest('hex')
        .slice(0, 12);
      return `nonce="[sha256:${h}]"`;
    });
  }
  return v;
}

/** Size-rotated JSON-lines file. Writes are synchronous appends (no lost lines on crash). */
export class HeaderLog {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly files: number,
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.fd = openSync(path, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  /** Appends one entry for a request. */
  record(entry: {
    endpoint: string;
    method: string;
    path: string;
    query: Record<string, unknown>;
    headers: Record<string, string | string[] | undefined>;
    decision?: string;
  }): void {
    const headers: Record<string, string | null> = {};
    for (const name of LOGGED_HEADERS) {
      const raw = entry.headers[name];
      headers[name] = redactHeader(name, Array.isArray(raw) ? raw.join(', ') : raw);
    }
    const line = `${JSON.stringify({
      ts: new Date().toISOString(),
      endpoint: entry.endpoint,
      method: entry.method,
      path: entry.path,
      query_params: entry.query,
      headers,
      decision: entry.decision,
    })}\n`;
    const bytes = Buffer.from(line);
    if (this.size + bytes.length > this.maxBytes && this.size > 0) this.rotate();
    writeSync(this.fd, bytes);
    this.size += bytes.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    const last = `${this.path}.${this.files}`;
    if (existsSync(last)) rmSync(last);
    for (let i = this.files - 1; i >= 1; i--) {
      const from = `${this.path}.${i}`;
      if (existsSync(from)) renameSync(from, `${this.path}.${i + 1}`);
    }
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, 'a', 0o600);
    this.size = 0;
  }

  /** Closes the file. */
  close(): void {
    closeSync(this.fd);
  }
}
