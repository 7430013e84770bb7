/**
 * End-to-end over real HTTP on 127.0.0.1: an Express collector, and an Express gateway in
 * policy-enforcement mode forwarding to it. Software P-256 keys stand in for the TPM.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createMemoryRecordSink,
  GeofenceError,
  geofence,
  isProblem,
  MemoryNonceStore,
  SqliteRegistry,
  verifyPayloadSignature,
} from '../src/index.js';
import { close, listen, type SentResponse, send } from './helpers/http.js';
import { freePort } from './helpers/redis.js';
import {
  BERLIN,
  type BuiltRequest,
  buildMetricsRequest,
  buildNonceRequest,
  type MetricsRequestOptions,
  makeAgent,
  type TestAgent,
} from './helpers/signed-request.js';

const dir = mkdtempSync(join(tmpdir(), 'geofence-http-'));
let registry: SqliteRegistry;
const nonces = new MemoryNonceStore();
const sink = createMemoryRecordSink();
let collectorServer: Server;
let gatewayServer: Server;
let extraServer: Server;
let collectorUrl: string;
let gatewayUrl: string;
let extraUrl: string;

/** What the `/observed/metrics` collector's `onReject` hook saw. */
const rejections: Array<{ type: string; body: Uint8Array | undefined }> = [];

const agent = makeAgent('agent-001');
const violator = makeAgent('agent-geo-policy-violation-002');
const unregistered = makeAgent('agent-unregistered-003');
const revoked = makeAgent('agent-revoked-004', { status: 'revoked' });
const pending = makeAgent('agent-pending-005', { status: 'pending' });
const rsaAgent = makeAgent('agent-rsa-006', { alg: 'rsa-v1_5-sha256' });
const attacker = makeAgent('attacker');

beforeAll(async () => {
  registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  for (const a of [agent, violator, revoked, pending, rsaAgent]) await registry.put(a.record);

  const c = express();
  c.get('/nonce', geofence.express.nonce({ registry, nonces }));
  c.post('/metrics', geofence.express.collector({ registry, nonces, onAccept: sink.onAccept }));
  collectorServer = createServer(c);
  collectorUrl = await listen(collectorServer);

  const g = express();
  const gw = geofence.express.gateway({ registry });
  const fwd = geofence.express.forward({ target: collectorUrl });
  g.get('/nonce', gw, fwd);
  g.post('/metrics', gw, fwd);
  gatewayServer = createServer(g);
  gatewayUrl = await listen(gatewayServer);

  // Servers provoking the validation types that need a failing dependency.
  const x = express();
  x.post(
    '/metrics',
    geofence.express.collector({
      registry,
      nonces,
      onAccept: () => {
        throw new Error('disk full at /var/lib/secret-path');
      },
    }),
  );
  x.post(
    '/limited/metrics',
    geofence.express.collector({
      registry,
      nonces,
      beforeVerify: () => {
        throw new GeofenceError('rate_limit', undefined, { retryAfter: 7 });
      },
    }),
  );
  const deadPort = await freePort();
  x.post(
    '/dead/metrics',
    geofence.express.gateway({ registry }),
    geofence.express.forward({ target: `http://127.0.0.1:${deadPort}` }),
  );
  x.post('/strict/metrics', geofence.express.collector({ registry, nonces, requireHttpSignature: true }));
  x.post(
    '/observed/metrics',
    geofence.express.collector({
      registry,
      nonces,
      onReject: (err, vr) => rejections.push({ type: err.validationType, body: vr.rawBody }),
    }),
  );
  extraServer = createServer(x);
  extraUrl = await listen(extraServer);
});

afterAll(async () => {
  await close(gatewayServer);
  await close(collectorServer);
  await close(extraServer);
  await registry?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function nonceFor(a: TestAgent): Promise<string> {
  const r = await send(collectorUrl, await buildNonceRequest(a));
  expect(r.status).toBe(200);
  return r.body.nonce as string;
}

function expectProblem(r: SentResponse, status: number, vt: string, rejectedBy: string) {
  expect(r.contentType).toBe('application/problem+json');
  expect(isProblem(r.body)).toBe(true);
  expect({ status: r.status, vt: r.body.validation_type, by: r.body.rejected_by }).toEqual({
    status,
    vt,
    by: rejectedBy,
  });
  expect(r.body.status).toBe(status);
  expect(r.body.type).toBe(`urn:geofence:error:${vt}`);
}

type Scenario = {
  name: string;
  agent: TestAgent;
  build: (nonce: string) => Promise<BuiltRequest>;
  status: number;
  vt?: string;
  /** where the enforcement-mode rejection comes from (default gateway) */
  enforcementBy?: string;
};

const m =
  (a: TestAgent, o: Omit<MetricsRequestOptions, 'nonce'> = {}) =>
  (nonce: string) =>
    buildMetricsRequest(a, { ...o, nonce });

function tamperBody(r: BuiltRequest, recomputeDigest: boolean): BuiltRequest {
  const body = r.body!.replace('"cpu_percent":12.5', '"cpu_percent":99.9');
  expect(body).not.toBe(r.body);
  const headers = { ...r.headers };
  if (recomputeDigest) {
    headers['content-digest'] = `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
  }
  return { ...r, body, headers };
}

const scenarios: Scenario[] = [
  { name: 'happy path', agent, build: m(agent), status: 200 },
  { name: 'RSA agent happy path', agent: rsaAgent, build: m(rsaAgent), status: 200 },
  {
    name: 'geographic policy violation (Berlin)',
    agent: violator,
    build: m(violator, { region: BERLIN }),
    status: 403,
    vt: 'geolocation_policy',
  },
  {
    name: 'header/payload location mismatch',
    agent,
    build: m(agent, { headerRegion: BERLIN }),
    status: 403,
    vt: 'geolocation_policy',
  },
  {
    name: 'tampered body (digest left)',
    agent,
    build: async (n) => tamperBody(await m(agent)(n), false),
    status: 400,
    vt: 'request_validation',
  },
  {
    name: 'tampered body (digest recomputed)',
    agent,
    build: async (n) => tamperBody(await m(agent)(n), true),
    status: 401,
    vt: 'signature_verification',
  },
  {
    name: 'tampered Workload-Geo-ID',
    agent,
    build: async (n) => {
      const r = await m(agent)(n);
      return {
        ...r,
        headers: {
          ...r.headers,
          'workload-geo-id': r.headers['workload-geo-id']!.replace('Santa Clara', 'Austin'),
        },
      };
    },
    status: 401,
    vt: 'signature_verification',
  },
  {
    name: 'expired created',
    agent,
    build: m(agent, { created: new Date(Date.now() - 1000_000) }),
    status: 401,
    vt: 'timestamp_proximity',
  },
  {
    name: 'stale payload timestamp',
    agent,
    build: m(agent, { timestamp: new Date(Date.now() - 3600_000) }),
    status: 401,
    vt: 'timestamp_proximity',
  },
  {
    name: 'signature window over 300 s',
    agent,
    build: (n) => {
      const created = new Date();
      return buildMetricsRequest(agent, {
        nonce: n,
        created,
        expires: new Date(created.getTime() + 3600_000),
      });
    },
    status: 401,
    vt: 'timestamp_proximity',
  },
  {
    name: 'wrong key',
    agent,
    build: m(agent, { signer: attacker.signer }),
    status: 401,
    vt: 'signature_verification',
  },
  {
    name: 'unknown keyid',
    agent,
    build: (n) => buildMetricsRequest(unregistered, { nonce: n }),
    status: 403,
    vt: 'agent_verification',
  },
  {
    name: 'agent name does not own the key',
    agent,
    build: m(agent, { agentName: 'agent-geo-policy-violation-002' }),
    status: 403,
    vt: 'agent_verification',
  },
  {
    name: 'header nonce differs from payload nonce',
    agent,
    build: m(agent, { headerNonce: 'A'.repeat(43) }),
    status: 401,
    vt: 'nonce_validation',
  },
  {
    name: 'nonce never issued',
    agent,
    build: () => buildMetricsRequest(agent, { nonce: Buffer.alloc(32, 9).toString('base64url') }),
    status: 401,
    vt: 'nonce_validation',
    enforcementBy: 'collector',
  },
  {
    name: 'nonce of another agent',
    agent,
    build: async () => buildMetricsRequest(agent, { nonce: await nonceFor(rsaAgent) }),
    status: 401,
    vt: 'nonce_validation',
    enforcementBy: 'collector',
  },
  {
    name: 'not JSON',
    agent,
    build: async () => ({
      method: 'POST',
      path: '/metrics',
      headers: { 'content-type': 'application/json' },
      body: '{"x":',
    }),
    status: 400,
    vt: 'request_validation',
  },
  {
    name: 'wrong content type',
    agent,
    build: async (n) => {
      const r = await m(agent)(n);
      return { ...r, headers: { ...r.headers, 'content-type': 'text/plain' } };
    },
    status: 415,
    vt: 'request_validation',
  },
];

describe('collector and gateway give the same answer for the same scenario', () => {
  for (const s of scenarios) {
    it(s.name, async () => {
      const direct = await send(collectorUrl, await s.build(await nonceFor(s.agent)));
      const viaGateway = await send(gatewayUrl, await s.build(await nonceFor(s.agent)));
      if (s.status === 200) {
        expect(direct.status).toBe(200);
        expect(direct.body).toMatchObject({
          status: 'success',
          message: 'Metrics received and verified successfully',
        });
        expect(typeof direct.body.record_id).toBe('string');
        expect(viaGateway.status).toBe(200);
        expect(viaGateway.body.record_id).not.toBe(direct.body.record_id);
        return;
      }
      expectProblem(direct, s.status, s.vt!, 'collector');
      expectProblem(viaGateway, s.status, s.vt!, s.enforcementBy ?? 'gateway');
    });
  }

  it('revoked and pending agents are refused at /nonce and /metrics', async () => {
    for (const a of [revoked, pending]) {
      for (const base of [collectorUrl, gatewayUrl]) {
        const r = await send(base, await buildNonceRequest(a));
        expectProblem(r, 403, 'agent_verification', base === collectorUrl ? 'collector' : 'gateway');
        expect(r.body.error).toBe('Agent is not active');
        const p = await send(
          base,
          await buildMetricsRequest(a, { nonce: Buffer.alloc(32, 1).toString('base64url') }),
        );
        expectProblem(p, 403, 'agent_verification', base === collectorUrl ? 'collector' : 'gateway');
      }
    }
  });

  it('unregistered agent at /nonce → 403 "Agent not found in allowlist"; missing parameter → 400', async () => {
    for (const base of [collectorUrl, gatewayUrl]) {
      const by = base === collectorUrl ? 'collector' : 'gateway';
      const r = await send(base, await buildNonceRequest(unregistered, { signed: false }));
      expectProblem(r, 403, 'agent_verification', by);
      expect(r.body.error).toBe('Agent not found in allowlist');
      const q = await send(base, { method: 'GET', path: '/nonce', headers: {} });
      expectProblem(q, 400, 'request_validation', by);
      expect(q.body.error).toBe('public_key_hash parameter is required');
      // a signature by another key over a registered keyid
      const forged = await buildNonceRequest(attacker, { keyid: agent.keyid });
      expectProblem(await send(base, forged), 403, 'agent_verification', by);
    }
  });
});

describe('collector', () => {
  it('stores the raw body, re-verifiable offline', async () => {
    const req = await buildMetricsRequest(agent, { nonce: await nonceFor(agent) });
    const r = await send(collectorUrl, req);
    expect(r.status).toBe(200);
    const stored = sink.records().find((x) => x.id === r.body.record_id)!;
    expect(Buffer.from(stored.rawBody).toString('utf8')).toBe(req.body);
    expect(verifyPayloadSignature(JSON.parse(req.body!), agent.publicKey)).toBe(true);
    expect(stored.httpSignature?.components).toEqual([
      '@method',
      '@path',
      'content-type',
      'content-digest',
      'workload-geo-id',
    ]);
    // The signature fields travel with the record, so its HTTP signature is re-verifiable too.
    const sent = req.headers as Record<string, string>;
    for (const name of [
      'content-type',
      'content-digest',
      'workload-geo-id',
      'signature-input',
      'signature',
    ]) {
      expect(stored.headers[name]).toBe(sent[name]);
    }
  });

  it('replayed request → 401 nonce_validation (directly and through the gateway)', async () => {
    const req = await buildMetricsRequest(agent, { nonce: await nonceFor(agent) });
    expect((await send(collectorUrl, req)).status).toBe(200);
    const again = await send(collectorUrl, req);
    expectProblem(again, 401, 'nonce_validation', 'collector');
    expect(again.body.error).toBe('Invalid or expired nonce for this agent');
    expectProblem(await send(gatewayUrl, req), 401, 'nonce_validation', 'collector');
  });

  it('200 concurrent submissions of one signed request → exactly one 200', async () => {
    const req = await buildMetricsRequest(agent, { nonce: await nonceFor(agent) });
    const results = await Promise.all(Array.from({ length: 200 }, () => send(collectorUrl, req)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200))
      expectProblem(r, 401, 'nonce_validation', 'collector');
  });

  it('accepts unsigned requests (headers stripped by an enforcing gateway) unless signatures are required', async () => {
    const req = await buildMetricsRequest(agent, { nonce: await nonceFor(agent), unsigned: true });
    expect((await send(collectorUrl, req)).status).toBe(200);
    const strict = await buildMetricsRequest(agent, { nonce: await nonceFor(agent), unsigned: true });
    expectProblem(
      await send(extraUrl, { ...strict, path: '/strict/metrics' }),
      400,
      'request_validation',
      'collector',
    );
  });

  it('a 2 MiB body → 413, with and without Content-Length', async () => {
    const big = `{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}`;
    const r = await send(collectorUrl, {
      method: 'POST',
      path: '/metrics',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    expectProblem(r, 413, 'request_validation', 'collector');
    const chunked = await fetch(`${collectorUrl}/metrics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(ctrl) {
          for (let i = 0; i < 32; i++) ctrl.enqueue(new TextEncoder().encode('x'.repeat(64 * 1024)));
          ctrl.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(chunked.headers.get('content-type')).toBe('application/problem+json');
    const gw = await send(gatewayUrl, {
      method: 'POST',
      path: '/metrics',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    expectProblem(gw, 413, 'request_validation', 'gateway');
  });

  it('hands onReject the body it refused, as received', async () => {
    const req = await buildMetricsRequest(agent, {
      nonce: await nonceFor(agent),
      region: BERLIN,
      path: '/observed/metrics',
    });
    const r = await send(extraUrl, req);
    expectProblem(r, 403, 'geolocation_policy', 'collector');
    expect(rejections).toHaveLength(1);
    expect(rejections[0]?.type).toBe('geolocation_policy');
    expect(Buffer.from(rejections[0]?.body ?? new Uint8Array()).toString('utf8')).toBe(req.body);
  });

  it('internal errors are opaque 500 problems', async () => {
    const r = await send(extraUrl, await buildMetricsRequest(agent, { nonce: await nonceFor(agent) }));
    expectProblem(r, 500, 'internal', 'collector');
    expect(JSON.stringify(r.body)).not.toContain('secret-path');
    expect(r.body.error).toBe('Internal error');
  });

  it('rate_limit (429 with Retry-After) and upstream (503 with Retry-After) problems', async () => {
    const req = await buildMetricsRequest(agent, { nonce: await nonceFor(agent) });
    const limited = await send(extraUrl, { ...req, path: '/limited/metrics' });
    expectProblem(limited, 429, 'rate_limit', 'collector');
    expect(limited.headers.get('retry-after')).toBe('7');
    const dead = await send(
      extraUrl,
      await buildMetricsRequest(agent, { nonce: await nonceFor(agent), path: '/dead/metrics' }),
    );
    // Nothing listens there: a refused connection is an outage (503 with Retry-After), not a bad gateway.
    expectProblem(dead, 503, 'upstream', 'gateway');
    expect(dead.headers.get('retry-after')).toBe('2');
  });

  it('validates options at construction with clear errors', () => {
    expect(() => geofence.express.collector({} as never)).toThrow(/option registry must be a Registry/);
    expect(() => geofence.express.collector({ registry } as never)).toThrow(
      /option nonces must be a NonceStore/,
    );
    expect(() => geofence.express.collector({ registry, nonces, bodyLimit: -1 })).toThrow(/bodyLimit/);
    expect(() => geofence.express.gateway({ registry, validateSignature: 'yes' as never })).toThrow(
      /validateSignature/,
    );
    expect(() => geofence.express.gateway({ registry, geoPolicy: { allow: [{ region: '' }] } })).toThrow(
      /geoPolicy is invalid/,
    );
    expect(() => geofence.express.forward({ target: 'not a url' })).toThrow(/absolute URL/);
  });
});

describe('fuzzing never yields a 500 or a non-problem answer', () => {
  const anyHeaderValue = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.constantFrom(
      'geo=:AAAA:',
      'geo=("@method");keyid="x"',
      'sha-256=:AAAA:',
      '{"client_workload_id":1}',
      '',
    ),
  );
  const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, '');

  it('fuzzed bodies', async () => {
    const base = await buildMetricsRequest(agent, { nonce: Buffer.alloc(32, 3).toString('base64url') });
    const template = JSON.parse(base.body!);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.json({ maxDepth: 3 }),
          fc
            .record({ key: fc.constantFrom(...Object.keys(template)), value: fc.jsonValue({ maxDepth: 2 }) })
            .map(({ key, value }) => JSON.stringify({ ...template, [key]: value })),
        ),
        fc.constantFrom(collectorUrl, gatewayUrl),
        async (body, url) => {
          const r = await send(url, { ...base, body });
          expect(r.status).toBeGreaterThanOrEqual(400);
          expect(r.status).toBeLessThan(500);
          expect(r.contentType).toBe('application/problem+json');
          expect(isProblem(r.body)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('fuzzed headers', async () => {
    const base = await buildMetricsRequest(agent, { nonce: Buffer.alloc(32, 4).toString('base64url') });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('signature', 'signature-input', 'content-digest', 'workload-geo-id', 'content-type'),
        anyHeaderValue,
        fc.constantFrom(collectorUrl, gatewayUrl),
        async (name, value, url) => {
          const r = await send(url, { ...base, headers: { ...base.headers, [name]: printable(value) } });
          expect(r.status).toBeGreaterThanOrEqual(400);
          expect(r.status).toBeLessThan(500);
          expect(r.contentType).toBe('application/problem+json');
          expect(isProblem(r.body)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('fuzzed nonce queries', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 100 }),
        fc.constantFrom(collectorUrl, gatewayUrl),
        async (q, url) => {
          const r = await send(url, {
            method: 'GET',
            path: `/nonce?public_key_hash=${encodeURIComponent(q)}`,
            headers: {},
          });
          expect([400, 403]).toContain(r.status);
          expect(isProblem(r.body)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
