/**
 * Framing of `POST /metrics` (issue 10 item 4), with header lines sent exactly as listed: a covered
 * header repeated with a different value is 400 `request_validation`, a `Content-Encoding` other than
 * `identity` is 415 — at the collector and at an enforcing gateway.
 */
import { join } from 'node:path';
import { SqliteRegistry } from '@geofence/verifier';
import { type Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawRequest } from '../src/demo/raw.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { type RunningGateway, startGateway } from '../src/server/gateway.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, register, signedRequest, softAgent } from './helpers/soft-agent.js';

const agent = softAgent('agent-001');
let registry: SqliteRegistry;
let col: RunningCollector;
let gw: RunningGateway;
let c: Agent;
let ca: string;

beforeAll(async () => {
  const env = await testDataDir('framing');
  ca = env.pki.ca;
  registry = await SqliteRegistry.open({ path: join(env.dir, 'registry.db') });
  await register(registry, agent);
  const noLimits = { rateLimit: { enabled: false } };
  col = await startCollector(testConfig('collector', env.dir, noLimits), { log: silentLog });
  gw = await startGateway(
    testConfig('gateway', env.dir, {
      ...noLimits,
      gateway: { collectorUrl: col.url, policyEnforcement: true },
    }),
    { log: silentLog },
  );
  c = client(ca);
});

afterAll(async () => {
  await gw?.close();
  await col?.close();
  await registry?.close();
  await c?.close();
});

/**
 * Sends `POST /metrics` with exactly these header lines: undici writes a flat header array line by
 * line, repeated names included, without folding them.
 */
async function rawPost(
  base: string,
  req: RawRequest,
  lines: Array<[string, string]>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await request(`${base}/metrics`, {
    method: 'POST',
    headers: lines.flat(),
    body: req.body,
    dispatcher: c,
  });
  const text = await r.body.text();
  return { status: r.statusCode, json: text.startsWith('{') ? JSON.parse(text) : {} };
}

/** The agent's own header lines, in order. */
function linesOf(req: RawRequest): Array<[string, string]> {
  return Object.entries(req.headers);
}

describe.each(['collector', 'enforcing gateway'])('framing at the %s', (where) => {
  const base = () => (where === 'collector' ? col.url : gw.url);

  it('accepts the request as signed (control), also with Content-Encoding: identity', async () => {
    const req = await signedRequest(c, base(), agent);
    expect((await rawPost(base(), req, linesOf(req))).status).toBe(200);
    const again = await signedRequest(c, base(), agent);
    const r = await rawPost(base(), again, [...linesOf(again), ['Content-Encoding', 'identity']]);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
  });

  it('refuses a covered header repeated with a different value (400 request_validation)', async () => {
    for (const [name, other] of [
      ['content-type', 'text/plain'],
      ['workload-geo-id', 'agent=x'],
      ['content-digest', 'sha-256=:AAAA:'],
    ] as const) {
      const req = await signedRequest(c, base(), agent);
      const r = await rawPost(base(), req, [...linesOf(req), [name, other]]);
      expect(r.status, `${name}: ${JSON.stringify(r.json)}`).toBe(400);
      expect(r.json).toMatchObject({
        validation_type: 'request_validation',
        error: `Duplicate ${name} header`,
      });
    }
  });

  it('refuses any Content-Encoding but identity (415)', async () => {
    for (const encoding of ['gzip', 'br', 'identity, gzip']) {
      const req = await signedRequest(c, base(), agent);
      const r = await rawPost(base(), req, [...linesOf(req), ['Content-Encoding', encoding]]);
      expect(r.status, encoding).toBe(415);
      expect(r.json).toMatchObject({ validation_type: 'request_validation' });
    }
  });
});
