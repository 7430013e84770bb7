/**
 * A loopback HTTPS reverse proxy that sends each request to the upstream a rule picks by method and
 * path — to make a multi-step flow cross replicas deterministically (what a load balancer may do).
 */
import { once } from 'node:events';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type Agent, request } from 'undici';

/** A running router. */
export interface PathRouter {
  url: string;
  /** `METHOD path → upstream` of every request, in order. */
  routed: string[];
  close(): Promise<void>;
}

/** Starts a router on a free port, serving `tls` and forwarding through `dispatcher`. */
export async function startPathRouter(
  tls: { cert: string; key: string },
  dispatcher: Agent,
  pick: (method: string, path: string) => string,
): Promise<PathRouter> {
  const routed: string[] = [];
  const server = createServer({ cert: tls.cert, key: tls.key }, async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = req.url ?? '/';
    const upstream = pick(req.method ?? 'GET', path);
    routed.push(`${req.method} ${path.split('?')[0]} → ${upstream}`);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && k !== 'host' && k !== 'connection')
        headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    try {
      const r = await request(`${upstream}${path}`, {
        method: (req.method ?? 'GET') as 'GET',
        headers,
        body: chunks.length ? Buffer.concat(chunks) : null,
        dispatcher,
      });
      const body = Buffer.from(await r.body.arrayBuffer());
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(r.headers)) {
        if (v !== undefined && k !== 'connection' && k !== 'transfer-encoding' && k !== 'keep-alive')
          out[k] = v;
      }
      res.writeHead(r.statusCode, out).end(body);
    } catch (err) {
      res.writeHead(502).end(String(err));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    routed,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
