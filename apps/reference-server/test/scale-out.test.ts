/**
 * Scale-out: a gateway fronting two collector processes that share a Redis nonce store and one
 * registry. A nonce issued by one replica is consumed at the other; one signed request submitted to
 * both at once is accepted exactly once.
 */
import { join } from 'node:path';
import type { NonceResponse } from '@geofence/verifier';
import { SqliteRegistry } from '@geofence/verifier';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildSigned } from '../src/demo/raw.js';
import { SqliteRecordStore } from '../src/records.js';
import { testDataDir } from './helpers/env.js';
import { type Service, spawnService, startRedis } from './helpers/procs.js';
import {
  client,
  http,
  postMetrics,
  register,
  SANTA_CLARA,
  signedRequest,
  softAgent,
} from './helpers/soft-agent.js';

// Real processes (swtpm, collectors, tsx start-up) on a shared 2-core machine: generous per-test bound.
vi.setConfig({ testTimeout: 150_000 });

const agent = softAgent('agent-001');
let redis: Awaited<ReturnType<typeof startRedis>>;
let a: Service;
let b: Service;
let gw: Service;
let c: Agent;
let dir: string;

beforeAll(async () => {
  const env = await testDataDir('scale');
  dir = env.dir;
  redis = await startRedis();
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  await register(registry, agent);
  await registry.close();
  const common = {
    GEOFENCE_DATA_DIR: dir,
    PORT: '0',
    NONCE_STORE: 'redis',
    REDIS_URL: redis.url,
    RATE_LIMIT_ENABLED: 'false',
    GEOFENCE_ADMIN_TOKEN: 'scale-admin-token-0123456789abcdef',
  };
  [a, b] = await Promise.all([spawnService('collector', common), spawnService('collector', common)]);
  gw = await spawnService('gateway', { ...common, COLLECTOR_URL: `${a.url},${b.url}` });
  c = client(env.pki.ca);
});

afterAll(async () => {
  await gw?.kill();
  await a?.kill();
  await b?.kill();
  await redis?.stop();
  await c?.close();
});

describe('collector replicas sharing Redis', () => {
  it('consumes at B a nonce issued by A', async () => {
    const req = await signedRequest(c, a.url, agent);
    const r = await postMetrics(c, b.url, req);
    expect(r.status).toBe(200);
    const again = await postMetrics(c, a.url, req);
    expect(again.status).toBe(401);
    expect(again.json.validation_type).toBe('nonce_validation');
  });

  it('accepts one signed request submitted to A and B at once exactly once', async () => {
    for (let round = 0; round < 10; round++) {
      const req = await signedRequest(c, round % 2 ? a.url : b.url, agent);
      const results = await Promise.all([postMetrics(c, a.url, req), postMetrics(c, b.url, req)]);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 401]);
      expect(results.find((r) => r.status === 401)?.json.validation_type).toBe('nonce_validation');
    }
  });

  it('serves agents through a gateway load-balancing both replicas, records in one shared store', async () => {
    const store = new SqliteRecordStore(join(dir, 'records.db'));
    const before = await store.count();
    const ids = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const n = await http(c, `${gw.url}/nonce?public_key_hash=${agent.keyid}`);
      expect(n.status).toBe(200);
      const req = await buildSigned({
        agentName: agent.name,
        keyid: agent.keyid,
        signer: agent.signer,
        nonce: n.json as unknown as NonceResponse,
        metrics: { i },
        place: SANTA_CLARA,
        now: new Date(),
        validitySeconds: 60,
      });
      const r = await postMetrics(c, gw.url, req);
      expect(r.status).toBe(200);
      ids.add(String(r.json.record_id));
    }
    expect(ids.size).toBe(12);
    expect(await store.count()).toBe(before + 12);
    await store.close();
  });

  it('reports not ready (503 problem) while the shared nonce store is unreachable', async () => {
    await redis.stop();
    const r = await http(c, `${a.url}/ready`);
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({
      validation_type: 'upstream',
      details: { checks: { nonce_store: false, registry: true } },
    });
    redis = await startRedis(redis.port); // same address: the replicas' clients reconnect
    for (let i = 0; i < 50 && (await http(c, `${a.url}/ready`)).status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await http(c, `${a.url}/ready`)).status).toBe(200);
  });

  it('keeps serving through the gateway when one replica stops', async () => {
    await b.kill();
    for (let i = 0; i < 4; i++) {
      const r = await signedRequest(c, gw.url, agent).then((req) => postMetrics(c, gw.url, req));
      expect(r.status).toBe(200);
    }
  });
});
