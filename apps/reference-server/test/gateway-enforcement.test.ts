/**
 * Gateway policy-enforcement mode in front of a real collector (software keys): first-layer
 * rejections with rejected_by gateway, signature headers stripped before forwarding, GATEWAY_VALIDATE_*
 * switches, and the same status/validation_type as standard mode for every scenario.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteRegistry } from '@geofence/verifier';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tamper } from '../src/demo/raw.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { type RunningGateway, startGateway } from '../src/server/gateway.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, http, postMetrics, register, signedRequest, softAgent } from './helpers/soft-agent.js';

const a1 = softAgent('agent-001');
const stranger = softAgent('agent-unknown');
const BERLIN = { region: 'EU', state: 'Germany', city: 'Berlin' };
let registry: SqliteRegistry;
let col: RunningCollector;
let standard: RunningGateway;
let enforcing: RunningGateway;
let noGeo: RunningGateway;
let c: Agent;
let dir: string;

beforeAll(async () => {
  const env = await testDataDir('gwenf');
  dir = env.dir;
  const pki = env.pki;
  registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  await register(registry, a1);
  const noLimits = { rateLimit: { enabled: false } };
  col = await startCollector(testConfig('collector', dir, noLimits), { log: silentLog });
  const gw = (gateway: Record<string, unknown>) =>
    startGateway(
      testConfig('gateway', dir, { ...noLimits, gateway: { collectorUrl: col.url, ...gateway } }),
      {
        log: silentLog,
      },
    );
  standard = await gw({});
  enforcing = await gw({ policyEnforcement: true });
  noGeo = await gw({ policyEnforcement: true, validateGeolocation: false });
  c = client(pki.ca);
});

afterAll(async () => {
  for (const s of [standard, enforcing, noGeo]) await s?.close();
  await col?.close();
  await registry?.close();
  await c?.close();
});

type Scenario = (base: string) => Promise<{ status: number; json: Record<string, unknown> }>;

const scenarios: Record<string, Scenario> = {
  happy: async (base) => postMetrics(c, base, await signedRequest(c, base, a1)),
  berlin: async (base) => postMetrics(c, base, await signedRequest(c, base, a1, { place: BERLIN })),
  unknown: (base) => http(c, `${base}/nonce?public_key_hash=${stranger.keyid}`),
  replay: async (base) => {
    const req = await signedRequest(c, base, a1);
    await postMetrics(c, base, req);
    return postMetrics(c, base, req);
  },
  tampered: async (base) => postMetrics(c, base, tamper(await signedRequest(c, base, a1))),
  expired: async (base) =>
    postMetrics(c, base, await signedRequest(c, base, a1, { now: new Date(Date.now() - 600_000) })),
};

describe('gateway policy enforcement', () => {
  it('gives the same status and validation_type as standard mode; only rejected_by differs', async () => {
    const expectedEnforcingRejecter: Record<string, string | undefined> = {
      happy: undefined,
      berlin: 'gateway',
      unknown: 'gateway',
      replay: 'collector',
      tampered: 'gateway',
      expired: 'gateway',
    };
    for (const [name, run] of Object.entries(scenarios)) {
      const s = await run(standard.url);
      const e = await run(enforcing.url);
      expect(e.status, name).toBe(s.status);
      expect(e.json.validation_type, name).toBe(s.json.validation_type);
      expect(e.json.rejected_by, name).toBe(expectedEnforcingRejecter[name]);
      if (s.status !== 200) expect(s.json.rejected_by, name).toBe('collector');
    }
  });

  it('strips Signature, Signature-Input and Workload-Geo-ID before forwarding (standard mode keeps them)', async () => {
    const viaEnforcing = await postMetrics(c, enforcing.url, await signedRequest(c, enforcing.url, a1));
    const viaStandard = await postMetrics(c, standard.url, await signedRequest(c, standard.url, a1));
    const stripped = await col.deps.records.get(String(viaEnforcing.json.record_id));
    const kept = await col.deps.records.get(String(viaStandard.json.record_id));
    expect(stripped?.headers['signature-input']).toBeUndefined();
    expect(stripped?.headers.signature).toBeUndefined();
    expect(stripped?.headers['workload-geo-id']).toBeUndefined();
    expect(stripped?.headers['content-digest']).toBeDefined();
    expect(kept?.headers['signature-input']).toContain('keyid=');
    expect(kept?.headers['workload-geo-id']).toContain('agent-001');
    // The header log still shows what the agent sent (before stripping), nonces redacted.
    const lines = readFileSync(join(dir, 'logs', 'gateway_headers.log'), 'utf8')
      .trim()
      .split('\n');
    const logged = lines.map(
      (l) => JSON.parse(l) as { path: string; headers: Record<string, string | null> },
    );
    const metrics = logged.filter((l) => l.path === '/metrics' && l.headers['signature-input']);
    expect(metrics.length).toBeGreaterThan(0);
    expect(
      metrics.every((l) => /nonce="\[sha256:[0-9a-f]{12}\]"/.test(String(l.headers['signature-input']))),
    ).toBe(true);
  });

  it('keeps the signature of GET /nonce: anonymous nonce requests cannot evict a signed nonce', async () => {
    // SPEC §16 attack: the agent obtains a nonce with a signed GET /nonce through the enforcing gateway,
    // then anyone floods GET /nonce for its keyid without a key. Before the fix the gateway stripped the
    // nonce request's signature, the nonce landed in the anonymous pool and the flood evicted it.
    for (const base of [enforcing.url, standard.url]) {
      const victim = await signedRequest(c, base, a1, { signNonce: true });
      for (let i = 0; i < 20; i++) {
        const flood = await http(c, `${base}/nonce?public_key_hash=${a1.keyid}`);
        expect(flood.status, base).toBe(200);
      }
      const r = await postMetrics(c, base, victim);
      expect(r.status, `${base}: ${JSON.stringify(r.json)}`).toBe(200);
    }
  });

  it('GATEWAY_VALIDATE_GEOLOCATION=false leaves the geo check to the collector (second layer)', async () => {
    const r = await scenarios.berlin!(noGeo.url);
    expect(r.status).toBe(403);
    expect(r.json).toMatchObject({ validation_type: 'geolocation_policy', rejected_by: 'collector' });
    const status = await http(c, `${noGeo.url}/gateway/status`);
    expect(status.json).toMatchObject({
      mode: 'gateway-policy-enforcement',
      validation: { public_key_hash: true, signature: true, geolocation: false },
    });
  });
});
