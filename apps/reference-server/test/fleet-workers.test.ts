/**
 * Fleet mode on all cores (issue 12, "Done when" item 2): `geofence collector --workers 2` with
 * `REGISTRY_TYPE=postgres RECORDS_STORE=postgres NONCE_STORE=redis` behind a gateway (also two
 * workers), real PostgreSQL and redis-server started here. An agent's signed `GET /nonce` and
 * `POST /metrics` go through the gateway and are accepted; the record is in PostgreSQL, readable
 * through `GET /metrics/records`. The same settings with `NONCE_STORE=memory` refuse to start with a
 * message naming the setting.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PostgresDatabase, PostgresRecordStore, PostgresRegistry } from '@geofence/verifier';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { testDataDir } from './helpers/env.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { type Service, spawnService, startRedis, type TestRedis } from './helpers/procs.js';
import { http, postMetrics, register, signedRequest, softAgent } from './helpers/soft-agent.js';

vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ADMIN_TOKEN = 'fleet-workers-admin-token-0123456789';

const agent = softAgent('agent-fleet-workers');
let dir: string;
let pg: TestPostgres;
let redis: TestRedis;
let collector: Service;
let gateway: Service;
let c: Agent;
let env: Record<string, string>;

beforeAll(async () => {
  const t = await testDataDir('fleet-workers');
  dir = t.dir;
  [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  env = {
    GEOFENCE_DATA_DIR: dir,
    PORT: '0',
    REGISTRY_TYPE: 'postgres',
    RECORDS_STORE: 'postgres',
    DATABASE_URL: pg.url,
    NONCE_STORE: 'redis',
    REDIS_URL: redis.url,
    RATE_LIMIT_ENABLED: 'false',
    GEOFENCE_ADMIN_TOKEN: ADMIN_TOKEN,
  };
  collector = await spawnService('collector', env, ['--workers', '2']);
  gateway = await spawnService('gateway', {
    ...env,
    GATEWAY_WORKERS: '2',
    GATEWAY_POLICY_ENFORCEMENT: 'true',
    COLLECTOR_URL: collector.url,
  });
  c = new Agent({ connect: { ca: t.pki.ca } });
});

afterAll(async () => {
  for (const s of [gateway, collector]) await s?.kill('SIGTERM');
  await c?.close();
  await redis?.stop();
  await pg?.destroy();
});

describe('collector --workers 2 on PostgreSQL + Redis', () => {
  it('serves the happy path through the enforcing gateway; the record is in PostgreSQL', async () => {
    const db = await PostgresDatabase.open({ url: pg.url });
    try {
      const registry = await PostgresRegistry.open({ db });
      await register(registry, agent);
      await registry.close();
      // Every worker of both services learns the new agent by LISTEN/NOTIFY, not by a restart.
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        let r = await postMetrics(c, gateway.url, await signedRequest(c, gateway.url, agent));
        for (let tries = 0; r.status === 403 && tries < 20; tries++) {
          await new Promise((res) => setTimeout(res, 100));
          r = await postMetrics(c, gateway.url, await signedRequest(c, gateway.url, agent));
        }
        expect(r.status, r.text).toBe(200);
        ids.push(String(r.json.record_id));
      }
      const records = new PostgresRecordStore(db);
      for (const id of ids) {
        const rec = await records.get(id);
        expect(rec?.agentName, id).toBe(agent.name);
      }
      const page = await http(c, `${collector.url}/metrics/records?agent=${agent.name}&limit=100`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(page.status, page.text).toBe(200);
      expect((page.json.records as Array<{ record_id: string }>).map((r) => r.record_id)).toEqual(ids);
    } finally {
      await db.close();
    }
  });

  it('refuses to start with NONCE_STORE=memory, naming the setting (exit 2)', async () => {
    const run = promisify(execFile);
    const err = await run(process.execPath, ['--import', 'tsx', CLI, 'collector', '--workers', '2'], {
      cwd: ROOT,
      env: { ...process.env, ...env, NONCE_STORE: 'memory' },
    }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/NONCE_STORE/);
  });
});
