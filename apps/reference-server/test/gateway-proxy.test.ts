import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { isProblem } from '@geofence/verifier';
import express from 'express';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../src/server/gateway.js';
import type { TlsMaterial } from '../src/tls.js';
import { ADMIN, silentLog, testConfig, testDataDir } from './helpers/env.js';

/** A stand-in upstream on HTTPS that records what it receives (the gateway under test is real). */
function upstreamApp(seen: Array<{ path: string; headers: Record<string, unknown>; body: string }>) {
  const app = express();
  app.use(express.raw({ type: () => true }));
  const record = (req: express.Request) => {
    seen.push({
      path: req.originalUrl,
      headers: { ...req.headers },
      body: Buffer.isBuffer(req.body) ? req.body.toString() : '',
    });
  };
  app.get('/nonce', (req, res) => {
    record(req);
    res.json({ nonce: 'n'.repeat(43), expires_at: new Date().toISOString(), expires_in: 300 });
  });
  app.post('/metrics', (req, res) => {
    record(req);
    if (Buffer.isBuffer(req.body) && req.body.toString() === '{"slow":true}') {
      setTimeout(() => res.json({ late: true }), 2000);
      return;
    }
    res.status(200).json({ status: 'success', record_id: 'rec_x' });
  });
  app.use((req, res) => {
    record(req);
    res.status(418).end();
  });
  return app;
}

let pki: TlsMaterial;
let dir: string;
let gw: RunningGateway;
let upstream: https.Server;
let upstreamPort: number;
let client: Agent;
const seen: Array<{ path: string; headers: Record<string, unknown>; body: string }> = [];

async function startUpstream(port = 0): Promise<void> {
  upstream = https.createServer({ cert: pki.cert, key: pki.key }, upstreamApp(seen));
  upstream.listen(port, '127.0.0.1');
  await once(upstream, 'listening');
  upstreamPort = (upstream.address() as AddressInfo).port;
}

async function stopUpstream(): Promise<void> {
  await new Promise<void>((r) => {
    upstream.close(() => r());
    upstream.closeAllConnections();
  });
}

beforeAll(async () => {
  ({ dir, pki } = await testDataDir('gwproxy'));
  await startUpstream();
  gw = await startGateway(
    testConfig('gateway', dir, {
      gateway: { collectorUrl: `https://127.0.0.1:${upstreamPort}`, upstreamTimeoutMs: 500 },
      rateLimit: { perIpPerSecond: 1000, perIpBurst: 1000, perKeyidPerSecond: 0.5, perKeyidBurst: 3 },
    }),
    { log: silentLog },
  );
  client = new Agent({ connect: { ca: pki.ca } });
});

afterAll(async () => {
  await gw?.close();
  await stopUpstream().catch(() => undefined);
  await client?.close();
});

async function call(
  method: 'GET' | 'POST',
  path: string,
  headers: Record<string, string> = {},
  body?: string,
) {
  const r = await request(`${gw.url}${path}`, {
    method,
    headers,
    ...(body ? { body } : {}),
    dispatcher: client,
  });
  const text = await r.body.text();
  return {
    status: r.statusCode,
    headers: r.headers,
    text,
    json: /json/.test(String(r.headers['content-type'])) ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

describe('gateway, standard mode (pure proxy of explicit routes)', () => {
  it('forwards /metrics byte for byte with the signature headers, never Authorization or cookies', async () => {
    const body = '{"a":1,  "b":"ü"}';
    const r = await call(
      'POST',
      '/metrics',
      {
        'content-type': 'application/json',
        signature: 'geo=:AAAA:',
        'signature-input': 'geo=("@method");keyid="k";nonce="SECRET-NONCE"',
        'workload-geo-id': '{"client_workload_id":"agent-001"}',
        authorization: 'Bearer do-not-forward',
        cookie: 'session=do-not-forward',
      },
      body,
    );
    expect(r.status).toBe(200);
    const last = seen[seen.length - 1];
    expect(last?.body).toBe(body);
    expect(last?.headers.signature).toBe('geo=:AAAA:');
    expect(last?.headers['workload-geo-id']).toBe('{"client_workload_id":"agent-001"}');
    expect(last?.headers.authorization).toBeUndefined();
    expect(last?.headers.cookie).toBeUndefined();
  });

  it('keeps the query string of /nonce as received (it is covered by @query signatures)', async () => {
    const kid = 'ab'.repeat(32);
    const r = await call('GET', `/nonce?public_key_hash=${kid}`);
    expect(r.status).toBe(200);
    expect(seen[seen.length - 1]?.path).toBe(`/nonce?public_key_hash=${kid}`);
  });

  it('never proxies unknown routes or methods (404 problem, upstream untouched)', async () => {
    const before = seen.length;
    for (const [m, p] of [
      ['GET', '/admin'],
      ['GET', '/metrics/records'],
      ['POST', '/agents'],
      ['GET', '/Metrics'],
      ['GET', '/metrics/'],
      ['POST', '/nonces/cleanup'],
    ] as const) {
      const r = await call(m, p);
      expect(r.status, `${m} ${p}`).toBe(404);
      expect(r.headers['content-type']).toContain('application/problem+json');
      expect(r.json.rejected_by).toBe('gateway');
    }
    expect(seen.length).toBe(before);
  });

  it('answers 504 when the collector is too slow', async () => {
    const r = await call('POST', '/metrics', { 'content-type': 'application/json' }, '{"slow":true}');
    expect(r.status).toBe(504);
    expect(isProblem(r.json)).toBe(true);
    expect(r.json.validation_type).toBe('upstream');
  });

  it('answers 503 problem+json with Retry-After while the collector is down, then recovers', async () => {
    await stopUpstream();
    const down = await call('POST', '/metrics', { 'content-type': 'application/json' }, '{}');
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBeDefined();
    expect(isProblem(down.json)).toBe(true);
    expect(down.json).toMatchObject({ validation_type: 'upstream', rejected_by: 'gateway' });
    const status = await call('GET', '/gateway/status');
    expect((status.json.upstream as { failures: number }).failures).toBeGreaterThan(0);
    await startUpstream(upstreamPort);
    const up = await call('POST', '/metrics', { 'content-type': 'application/json' }, '{}');
    expect(up.status).toBe(200);
  });

  it('rate-limits per claimed keyid with 429 + Retry-After', async () => {
    const kid = 'cd'.repeat(32);
    const statuses: number[] = [];
    let retry: unknown;
    for (let i = 0; i < 5; i++) {
      const r = await call('GET', `/nonce?public_key_hash=${kid}`);
      statuses.push(r.status);
      if (r.status === 429) retry = r.headers['retry-after'];
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses).toContain(429);
    expect(Number(retry)).toBeGreaterThanOrEqual(1);
    const other = await call('GET', `/nonce?public_key_hash=${'ef'.repeat(32)}`);
    expect(other.status).toBe(200);
    const limits = await call('GET', '/gateway/rate-limits');
    expect((limits.json.per_keyid as { burst: number }).burst).toBe(3);
  });

  it('protects /reload-allowlist with the admin token', async () => {
    expect((await call('POST', '/reload-allowlist')).status).toBe(403);
    expect(
      (await call('POST', '/reload-allowlist', { authorization: 'Bearer wrong-token-wrong-token-wrong' }))
        .status,
    ).toBe(403);
    expect((await call('POST', '/reload-allowlist', ADMIN)).status).toBe(200);
  });

  it('reports its mode and writes a redacted header log', async () => {
    const h = await call('GET', '/health');
    expect(h.json).toMatchObject({ status: 'healthy', mode: 'standard' });
    const path = join(dir, 'logs', 'gateway_headers.log');
    expect(existsSync(path)).toBe(true);
    const text = readFileSync(path, 'utf8');
    expect(text).toContain('agent-001');
    expect(text).not.toContain('do-not-forward');
    expect(text).not.toContain('SECRET-NONCE');
    const prom = await call('GET', '/metrics-prometheus');
    expect(prom.text).toContain('geofence_http_requests_total');
    expect(prom.text).toMatch(/validation_type="upstream"/);
  });
});
