/**
 * Starts an Express app on HTTPS (default; TLS ≥ 1.2) or, when explicitly disabled, HTTP, and returns
 * a handle that closes it including idle keep-alive connections.
 */
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

/** A started listener. */
export interface Listening {
  /** Base URL, e.g. `https://127.0.0.1:8444`. */
  url: string;
  port: number;
  /** Stops accepting, closes idle and active connections. */
  close(): Promise<void>;
}

/** Listener options. */
export interface ListenOptions {
  host: string;
  port: number;
  tls?: { cert: string; key: string; ca?: string; minVersion: 'TLSv1.2' | 'TLSv1.3'; requestCert?: boolean };
}

/** Listens and resolves once the socket is bound (port 0 picks a free port). */
export async function listen(app: Express, opts: ListenOptions): Promise<Listening> {
  if (opts.tls?.requestCert && !opts.tls.ca) {
    // Never fail open: requiring client certificates without a trust anchor would accept none or all.
    throw new TypeError('client certificates required but no CA configured (SSL_CA_PATH)');
  }
  const server = opts.tls
    ? https.createServer(
        {
          cert: opts.tls.cert,
          key: opts.tls.key,
          minVersion: opts.tls.minVersion,
          ...(opts.tls.requestCert && opts.tls.ca
            ? { requestCert: true, rejectUnauthorized: true, ca: opts.tls.ca }
            : {}),
        },
        app,
      )
    : http.createServer(app);
  // Slow-loris bounds: a client must send its headers and body in reasonable time.
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  server.keepAliveTimeout = 5_000;
  server.listen(opts.port, opts.host);
  await once(server, 'listening');
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${host}:${addr.port}`,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
