/**
 * Starts a request listener (an Express app, or a service's listener of hot-routes.ts) on HTTPS (default; TLS ≥ 1.2) or, when explicitly disabled, HTTP, and returns
 * a handle that closes it including idle keep-alive connections.
 */
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/** A started listener. */
export interface Listening {
  /** Base URL, e.g. `https://127.0.0.1:8444`. */
  url: string;
  port: number;
  /**
   * Stops accepting and drains: requests in flight are answered (their keep-alive connections are
   * closed once idle), connections still busy after the drain timeout are cut.
   */
  close(): Promise<void>;
}

/** Listener options. */
export interface ListenOptions {
  host: string;
  port: number;
  tls?: { cert: string; key: string; ca?: string; minVersion: 'TLSv1.2' | 'TLSv1.3'; requestCert?: boolean };
  /** Longest a close waits for requests in flight (default 10 s; the request timeout bounds them too). */
  drainTimeoutMs?: number;
}

/** Listens and resolves once the socket is bound (port 0 picks a free port). */
export async function listen(app: http.RequestListener, opts: ListenOptions): Promise<Listening> {
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
        // Connections turn idle as their last response is sent: close each then, cut the rest at the deadline.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        const cut = setTimeout(() => server.closeAllConnections(), opts.drainTimeoutMs ?? 10_000);
        server.close(() => {
          clearInterval(idle);
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
