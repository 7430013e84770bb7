/**
 * The Fastify plugin over real HTTP on 127.0.0.1: collector + nonce routes, and a gateway in
 * policy-enforcement mode forwarding to the collector.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { geofenceFastify } from '../src/fastify.js';
import { type GatewayVerdict, isProblem, JsonFileRegistry, MemoryNonceStore } from '../src/index.js';
import { send } from './helpers/http.js';
import {
  BERLIN,
  buildMetricsRequest,
  buildNonceRequest,
  makeAgent,
  type TestAgent,
} from './helpers/signed-request.js';

const dir = mkdtempSync(join(tmpdir(), 'geofence-fastify-'));
const agent = makeAgent('agent-001');
const violator = makeAgent('agent-geo-policy-violation-002');
const unregistered = makeAgent('agent-unregistered-003');
let registry: JsonFileRegistry;
let collector: FastifyInstance;
let gateway: FastifyInstance;
let collectorUrl: string;
let gatewayUrl: string;
const forwarded: GatewayVerdict[] = [];

beforeAll(async () => {
  registry = await JsonFileRegistry.open({ path: join(dir, 'allowlist.json') });
  await registry.put(agent.record);
  await registry.put(violator.record);
  const nonces = new MemoryNonceStore();
  collector = Fastify();
  await collector.register(geofenceFastify, {
    collector: { registry, nonces },
    nonce: { registry, nonces },
  });
  collectorUrl = await collector.listen({ host: '127.0.0.1', port: 0 });

  gateway = Fastify();
  await gateway.register(geofenceFastify, {
    gateway: {
      registry,
      async forward(request, reply, verdict) {
        forwarded.push(verdict);
        // metrics lose their signature headers; nonce requests keep theirs for the collector
        if (verdict.kind === 'metrics') expect(request.headers.signature).toBeUndefined();
        else expect(request.headers.signature).toBeDefined();
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(request.headers)) {
          if (typeof v === 'string' && !['host', 'content-length', 'connection'].includes(k)) headers[k] = v;
        }
        const up = await fetch(collectorUrl + request.raw.url, {
          method: request.method,
          headers,
          body: request.method === 'POST' ? (request.body as Buffer) : undefined,
        });
        reply.code(up.status).header('content-type', up.headers.get('content-type') ?? 'application/json');
        return reply.send(Buffer.from(await up.arrayBuffer()));
      },
    },
  });
  gatewayUrl = await gateway.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await gateway?.close();
  await collector?.close();
  await registry?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function nonceFor(a: TestAgent, base = collectorUrl) {
  const r = await send(base, await buildNonceRequest(a));
  expect(r.status).toBe(200);
  return r.body.nonce as string;
}

describe('fastify plugin', () => {
  it('happy path directly and through the gateway', async () => {
    const direct = await send(
      collectorUrl,
      await buildMetricsRequest(agent, { nonce: await nonceFor(agent) }),
    );
    expect(direct.status).toBe(200);
    expect(direct.body).toMatchObject({ status: 'success' });
    const via = await send(
      gatewayUrl,
      await buildMetricsRequest(agent, { nonce: await nonceFor(agent, gatewayUrl) }),
    );
    expect(via.status).toBe(200);
    expect(forwarded.some((v) => v.kind === 'metrics' && v.agent?.agent_name === 'agent-001')).toBe(true);
  });

  it('same status and validation_type in both roles', async () => {
    const cases: Array<[() => Promise<import('./helpers/signed-request.js').BuiltRequest>, number, string]> =
      [
        [
          async () => buildMetricsRequest(violator, { nonce: await nonceFor(violator), region: BERLIN }),
          403,
          'geolocation_policy',
        ],
        [async () => buildNonceRequest(unregistered), 403, 'agent_verification'],
        [
          async () =>
            buildMetricsRequest(agent, {
              nonce: await nonceFor(agent),
              created: new Date(Date.now() - 900_000),
            }),
          401,
          'timestamp_proximity',
        ],
      ];
    for (const [build, status, vt] of cases) {
      const a = await send(collectorUrl, await build());
      const b = await send(gatewayUrl, await build());
      for (const [r, by] of [
        [a, 'collector'],
        [b, 'gateway'],
      ] as const) {
        expect(r.contentType).toBe('application/problem+json');
        expect(isProblem(r.body)).toBe(true);
        expect([r.status, r.body.validation_type, r.body.rejected_by]).toEqual([status, vt, by]);
      }
    }
  });

  it('replay → 401 nonce_validation', async () => {
    const req = await buildMetricsRequest(agent, { nonce: await nonceFor(agent) });
    expect((await send(collectorUrl, req)).status).toBe(200);
    const r = await send(collectorUrl, req);
    expect([r.status, r.body.validation_type]).toEqual([401, 'nonce_validation']);
  });

  it('413 and 415 are problems too', async () => {
    const big = await send(collectorUrl, {
      method: 'POST',
      path: '/metrics',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(2 * 1024 * 1024),
    });
    expect([big.status, big.contentType, big.body.validation_type]).toEqual([
      413,
      'application/problem+json',
      'request_validation',
    ]);
    const text = await send(collectorUrl, {
      method: 'POST',
      path: '/metrics',
      headers: { 'content-type': 'text/plain' },
      body: 'hi',
    });
    expect([text.status, text.body.validation_type]).toEqual([415, 'request_validation']);
  });

  it('validates options at registration', async () => {
    const app = Fastify();
    await expect(app.register(geofenceFastify, {}).ready()).rejects.toThrow(
      /at least one of collector, nonce, gateway/,
    );
    const app2 = Fastify();
    await expect(app2.register(geofenceFastify, { gateway: { registry } as never }).ready()).rejects.toThrow(
      /forward must be a function/,
    );
    await app.close();
    await app2.close();
  });
});
