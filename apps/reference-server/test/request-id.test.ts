/**
 * One request-id rule on every endpoint: the id in a problem and in `X-Request-Id` is ours, the same
 * in both, and never the client's own `X-Request-Id` (which a caller could otherwise set to another
 * request's id to muddle logs and support tickets).
 */

import { join } from 'node:path';
import { SqliteRegistry } from '@geofence/verifier';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { type RunningGateway, startGateway } from '../src/server/gateway.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, http } from './helpers/soft-agent.js';

let col: RunningCollector;
let gw: RunningGateway;
let c: Agent;
const CLIENT_ID = 'chosen-by-the-client-0001';

beforeAll(async () => {
  const env = await testDataDir('reqid');
  (await SqliteRegistry.open({ path: join(env.dir, 'registry.db') })).close();
  col = await startCollector(testConfig('collector', env.dir, { rateLimit: { enabled: false } }), {
    log: silentLog,
  });
  gw = await startGateway(
    testConfig('gateway', env.dir, {
      rateLimit: { enabled: false },
      gateway: { collectorUrl: col.url, policyEnforcement: true },
    }),
    { log: silentLog },
  );
  c = client(env.pki.ca);
});

afterAll(async () => {
  await gw?.close();
  await col?.close();
  await c?.close();
});

const requests: Record<string, { path: string; method?: 'GET' | 'POST'; body?: string; type?: string }> = {
  nonce: { path: `/nonce?public_key_hash=${'a'.repeat(64)}` },
  metrics: { path: '/metrics', method: 'POST', body: '{"not":"a payload"}', type: 'application/json' },
  enroll: { path: '/enroll', method: 'POST', body: '{nope', type: 'application/json' },
  location: { path: '/attest/location', method: 'POST', body: '[]', type: 'application/json' },
};

describe.each(['collector', 'gateway'])('request ids at the %s', (where) => {
  it.each(
    Object.keys(requests),
  )('%s: the problem and X-Request-Id carry our id, not the client’s', async (name) => {
    const r = requests[name]!;
    const base = where === 'collector' ? col.url : gw.url;
    const res = await http(c, `${base}${r.path}`, {
      method: r.method ?? 'GET',
      headers: { 'x-request-id': CLIENT_ID, ...(r.type ? { 'content-type': r.type } : {}) },
      ...(r.body !== undefined ? { body: r.body } : {}),
    });
    expect(res.status, res.text).toBeGreaterThanOrEqual(400);
    const ours = res.headers['x-request-id'];
    expect(typeof ours).toBe('string');
    expect(ours).not.toBe(CLIENT_ID);
    // An answer the gateway passes on from the collector names the collector's id, sent back as
    // X-Collector-Request-Id next to the gateway's own.
    const answering = res.headers['x-collector-request-id'] ?? ours;
    expect(answering).not.toBe(CLIENT_ID);
    expect(res.json.request_id).toBe(answering);
  });
});
