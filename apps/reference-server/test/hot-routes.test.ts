/**
 * `GET /nonce` and `POST /metrics` are served before the Express app (hot-routes.ts): the answers
 * a client sees — routing, HEAD, 404s, request ids, rate limits by client address under
 * `trust proxy`, Prometheus labels — must be those an Express route gives.
 */
import { join } from 'node:path';
import { SqliteRegistry } from '@geofence/verifier';
import { type Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, http, postMetrics, register, signedRequest, softAgent } from './helpers/soft-agent.js';

let col: RunningCollector;
let registry: SqliteRegistry;
let c: Agent;
const a1 = softAgent('agent-001');

beforeAll(async () => {
  const { dir, pki } = await testDataDir('hot-routes');
  registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  await register(registry, a1);
  col = await startCollector(
    testConfig('collector', dir, {
      // Proxies on loopback are trusted: the client address is the X-Forwarded-For entry.
      trustProxy: 'loopback',
      rateLimit: { perIpPerSecond: 0.001, perIpBurst: 3, perKeyidPerSecond: 1000, perKeyidBurst: 1000 },
    }),
    { log: silentLog },
  );
  c = client(pki.ca);
});

afterAll(async () => {
  await col?.close();
  await registry?.close();
  await c?.close();
});

const url = (p: string) => `${col.url}${p}`;
let nextClient = 1;
/** A client address of its own (a fresh per-IP bucket), as a trusted proxy reports it. */
const via = () => ({ 'x-forwarded-for': `203.0.113.${nextClient++}` });

describe('hot routes', () => {
  it('answer with a request id of ours and count under their route in Prometheus', async () => {
    const headers = via();
    const missing = await http(c, url('/nonce'), {
      headers: { ...headers, 'x-request-id': 'client-chosen' },
    });
    expect(missing.status).toBe(400);
    expect(missing.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(missing.json.request_id).toBe(missing.headers['x-request-id']);
    const signed = await signedRequest(c, col.url, a1);
    const ok = await postMetrics(c, col.url, signed);
    expect(ok.status).toBe(200);
    const prom = await http(c, url('/metrics-prometheus'));
    expect(prom.text).toMatch(
      /geofence_http_requests_total\{[^}]*route="\/nonce"[^}]*status="400"[^}]*validation_type="request_validation"/,
    );
    expect(prom.text).toMatch(/geofence_http_requests_total\{[^}]*route="\/metrics"[^}]*status="200"/);
    expect(prom.text).toMatch(/geofence_verification_duration_seconds_count\{[^}]*route="\/metrics"/);
  });

  it('serve HEAD /nonce through the nonce route (405), and leave other paths and methods to the app', async () => {
    const head = await request(url(`/nonce?public_key_hash=${a1.keyid}`), {
      method: 'HEAD',
      headers: via(),
      dispatcher: c,
    });
    await head.body.dump();
    expect(head.statusCode).toBe(405);
    for (const [method, path] of [
      ['GET', '/nonce/'],
      ['GET', '/Nonce'],
      ['POST', '/nonce'],
      ['GET', '/metrics'],
      ['POST', '/metrics/'],
    ] as const) {
      const r = await http(c, url(path), { method, headers: via() });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.json).toMatchObject({ validation_type: 'request_validation', details: { path } });
    }
    // The app's own routes still answer.
    expect((await http(c, url('/health'))).status).toBe(200);
  });

  it('rate-limit by the client address the trusted proxy reports, as Express computes req.ip', async () => {
    const one = via();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await http(c, url('/nonce'), { headers: one })).status);
    // Burst 3: the fourth request from the same client is limited.
    expect(statuses).toEqual([400, 400, 400, 429]);
    const limited = await http(c, url('/nonce'), { headers: one });
    expect(limited.json).toMatchObject({ validation_type: 'rate_limit', details: { limited_by: 'ip' } });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Another client behind the same proxy has its own bucket; so does POST /metrics's caller.
    expect((await http(c, url('/nonce'), { headers: via() })).status).toBe(400);
    const other = via();
    const posts: number[] = [];
    for (let i = 0; i < 4; i++) {
      posts.push(
        (
          await http(c, url('/metrics'), {
            method: 'POST',
            headers: { ...other, 'content-type': 'application/json' },
            body: '{}',
          })
        ).status,
      );
    }
    expect(posts.slice(0, 3).every((s) => s === 400)).toBe(true);
    expect(posts[3]).toBe(429);
  });
});
