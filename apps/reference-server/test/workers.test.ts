/**
 * All cores (issue 12 items 2 and 3, scenarios a, d, f): two collectors × two workers (node:cluster)
 * behind a gateway with two workers, sharing one redis-server (nonces, signed-nonce replay marks)
 * and one SQLite records file on this host; all real processes.
 *
 * - (a) 1,000 concurrent replays of one signed request through the gateway: exactly one 200;
 * - a worker killed with SIGKILL is replaced and counted in `geofence_worker_restarts_total`;
 * - (d) one collector (primary and workers) killed with SIGKILL under load: every acknowledged
 *   record is stored exactly once;
 * - (f) the per-IP budget is one budget across two collector replicas (`RATE_LIMIT_STORE=redis`),
 *   and a Redis outage is answered 503 with Retry-After (fail closed);
 * - SIGTERM drains: a request in flight is answered before the workers exit;
 * - `--workers 2` with the memory nonce store refuses to start (status 2, names NONCE_STORE).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SqliteRegistry } from '@geofence/verifier';
import Database from 'better-sqlite3';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SqliteRecordStore } from '../src/records.js';
import { testDataDir } from './helpers/env.js';
import {
  childPids,
  type Service,
  spawnService,
  startRedis,
  type TestRedis,
  workerPids,
} from './helpers/procs.js';
import {
  http,
  postMetrics,
  register,
  type SoftAgent,
  signedRequest,
  softAgent,
} from './helpers/soft-agent.js';

// Nine service processes plus Redis on a shared 2-core machine: generous bounds.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ADMIN_TOKEN = 'workers-admin-token-0123456789abcdef';

const agents: SoftAgent[] = Array.from({ length: 4 }, (_, i) => softAgent(`agent-worker-${i}`));
let dir: string;
let ca: string;
let redis: TestRedis;
let a: Service;
let b: Service;
let gw: Service;
let c: Agent;
const services: Service[] = [];

/** The sum of the samples of `name` whose labels include every pair of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function scrape(base: string): Promise<string> {
  const r = await http(c, `${base}/metrics-prometheus`);
  expect(r.status).toBe(200);
  return r.text;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits (polling) until `pred` holds; fails after `ms`. */
async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(100);
  }
}

/** The command line of process `pid` (for assertion messages). */
function commandLine(pid: number): string {
  try {
    return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}`;
  } catch {
    return `${pid}: (exited)`;
  }
}

/** The nonce of a stored or sent body. */
const nonceOf = (body: Buffer) => (JSON.parse(body.toString('utf8')) as { nonce: string }).nonce;

async function spawn(role: string, env: Record<string, string>): Promise<Service> {
  const s = await spawnService(role, env);
  services.push(s);
  return s;
}

beforeAll(async () => {
  const t = await testDataDir('workers');
  dir = t.dir;
  ca = t.pki.ca;
  redis = await startRedis();
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  for (const x of agents) await register(registry, x);
  await registry.close();
  const common = {
    GEOFENCE_DATA_DIR: dir,
    PORT: '0',
    NONCE_STORE: 'redis',
    REDIS_URL: redis.url,
    RATE_LIMIT_ENABLED: 'false',
    // Four writer threads share records.db: wait for each other's commits rather than answer 503.
    SQLITE_BUSY_TIMEOUT_MS: '5000',
    GEOFENCE_ADMIN_TOKEN: ADMIN_TOKEN,
    COLLECTOR_WORKERS: '2',
  };
  [a, b] = await Promise.all([spawn('collector', common), spawn('collector', common)]);
  gw = await spawn('gateway', { ...common, GATEWAY_WORKERS: '2', COLLECTOR_URL: `${a.url},${b.url}` });
  // Many connections, so the replays reach both gateway workers at once.
  c = new Agent({ connect: { ca }, connections: 64 });
});

afterAll(async () => {
  for (const s of services) await s.kill('SIGKILL');
  await redis?.stop();
  await c?.close();
});

describe('two collectors × two workers behind a two-worker gateway', () => {
  it('runs each service as a primary with two workers on one port', () => {
    for (const s of [a, b, gw]) {
      const kids = workerPids(s.child.pid as number);
      expect(kids, `children ${kids.map(commandLine).join('; ')}\n${s.output()}`).toHaveLength(2);
    }
  });

  it('(a) accepts one signed request replayed 1,000 times at once exactly once', async () => {
    const before = await Promise.all([scrape(a.url), scrape(b.url)]);
    const req = await signedRequest(c, gw.url, agents[0] as SoftAgent);
    const results = await Promise.all(Array.from({ length: 1000 }, () => postMetrics(c, gw.url, req)));
    const statuses = new Map<number, number>();
    for (const r of results) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    expect(Object.fromEntries(statuses)).toEqual({ 200: 1, 401: 999 });
    for (const r of results.filter((x) => x.status === 401)) {
      expect(r.json.validation_type).toBe('nonce_validation');
    }
    // Both replicas took part in the race (counted over all their workers).
    const after = await Promise.all([scrape(a.url), scrape(b.url)]);
    const seen = after.map(
      (text, i) =>
        sample(text, 'geofence_http_requests_total', { route: '/metrics' }) -
        sample(before[i] as string, 'geofence_http_requests_total', { route: '/metrics' }),
    );
    expect(seen[0]).toBeGreaterThan(0);
    expect(seen[1]).toBeGreaterThan(0);
    expect((seen[0] as number) + (seen[1] as number)).toBe(1000);
    // Each gateway worker keeps (and rotates) a header log of its own, named by its slot.
    const logs = readdirSync(join(dir, 'logs')).sort();
    expect(logs).toEqual(['gateway_headers.w0.log', 'gateway_headers.w1.log']);
  });

  it('replaces a worker killed with SIGKILL and counts the restart', async () => {
    const primary = a.child.pid as number;
    const [victim] = workerPids(primary);
    expect(victim).toBeDefined();
    expect(sample(await scrape(a.url), 'geofence_worker_restarts_total')).toBe(0);
    process.kill(victim as number, 'SIGKILL');
    await until(() => {
      const now = workerPids(primary);
      return now.length === 2 && !now.includes(victim as number);
    }, 'a replacement worker runs');
    // The replacement answers once it listens; the scrape may land on either worker.
    await until(async () => sample(await scrape(a.url), 'geofence_workers') === 2, 'both workers report');
    const text = await scrape(a.url);
    expect(sample(text, 'geofence_worker_restarts_total')).toBe(1);
    for (let i = 0; i < 4; i++) {
      const req = await signedRequest(c, a.url, agents[1] as SoftAgent);
      expect((await postMetrics(c, a.url, req)).status).toBe(200);
    }
  });

  it('(d) stores every acknowledged record exactly once when a collector is killed with SIGKILL under load', async () => {
    const acknowledged = new Map<string, string>(); // record id → nonce
    let stop = false;
    const loop = async (x: SoftAgent) => {
      while (!stop) {
        try {
          const req = await signedRequest(c, gw.url, x);
          const r = await postMetrics(c, gw.url, req);
          if (r.status === 200) acknowledged.set(String(r.json.record_id), nonceOf(req.body));
        } catch {
          // a nonce request answered by the dead replica: try again
        }
      }
    };
    const loops = agents.flatMap((x) => [loop(x), loop(x)]);
    try {
      await until(() => acknowledged.size >= 40, '40 records are acknowledged');
      const primary = a.child.pid as number;
      for (const pid of [...childPids(primary), primary]) process.kill(pid, 'SIGKILL');
      const atKill = acknowledged.size;
      await until(() => acknowledged.size >= atKill + 40, '40 more records are acknowledged by B');
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    const store = new SqliteRecordStore(join(dir, 'records.db'));
    try {
      const stored = (await store.list({ limit: 1000 })).records;
      expect(stored.length).toBeLessThan(1000); // one page holds them all
      const perNonce = new Map<string, number>();
      for (const r of stored)
        perNonce.set(
          nonceOf(Buffer.from(r.rawBody)),
          (perNonce.get(nonceOf(Buffer.from(r.rawBody))) ?? 0) + 1,
        );
      for (const [id, nonce] of acknowledged) {
        const rec = await store.get(id);
        expect(rec, `acknowledged record ${id} lost`).toBeDefined();
        expect(nonceOf(Buffer.from(rec?.rawBody ?? Buffer.from('{}')))).toBe(nonce);
        expect(perNonce.get(nonce), `record of nonce ${nonce} stored more than once`).toBe(1);
      }
      expect(new Set(stored.map((r) => r.id)).size).toBe(stored.length);
    } finally {
      await store.close();
    }
  });
});

describe('rate limits shared in Redis across replicas (f)', () => {
  let limitRedis: TestRedis;
  let x: Service;
  let y: Service;

  beforeAll(async () => {
    // The fleet of the scenarios above is done: free the cores for this one.
    await gw.kill();
    await b.kill();
    limitRedis = await startRedis();
    const env = {
      GEOFENCE_DATA_DIR: dir,
      PORT: '0',
      NONCE_STORE: 'sqlite',
      RATE_LIMIT_STORE: 'redis',
      REDIS_URL: limitRedis.url,
      RATE_LIMIT_PER_IP: '0.01',
      RATE_LIMIT_PER_IP_BURST: '10',
      GEOFENCE_ADMIN_TOKEN: ADMIN_TOKEN,
      COLLECTOR_WORKERS: '2',
    };
    [x, y] = await Promise.all([spawn('collector', env), spawn('collector', env)]);
  });

  afterAll(async () => {
    await limitRedis?.stop();
  });

  it('gives a client one budget across two replicas of two workers each', async () => {
    const statuses: number[] = [];
    const kid = (agents[2] as SoftAgent).keyid;
    for (let i = 0; i < 40; i++) {
      const r = await http(c, `${(i % 2 ? x : y).url}/nonce?public_key_hash=${kid}`);
      statuses.push(r.status);
      if (r.status === 429) {
        expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(r.json).toMatchObject({ validation_type: 'rate_limit', details: { limited_by: 'ip' } });
      }
    }
    // Per-process buckets would have allowed up to 10 per worker (40 here).
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30);
  });

  it('fails closed (503 upstream + Retry-After) while the rate limit store is down, and recovers', async () => {
    await limitRedis.stop();
    const kid = (agents[3] as SoftAgent).keyid;
    for (const s of [x, y]) {
      const r = await http(c, `${s.url}/nonce?public_key_hash=${kid}`);
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBeDefined();
      expect(r.json).toMatchObject({
        validation_type: 'upstream',
        details: { dependency: 'rate_limit_store' },
      });
    }
    limitRedis = await startRedis(limitRedis.port); // empty: every bucket full again
    await until(
      async () => (await http(c, `${x.url}/nonce?public_key_hash=${kid}`)).status === 200,
      'the replica answers again',
      15_000,
    );
  });
});

describe('graceful shutdown of a clustered collector', () => {
  it('answers a request in flight at SIGTERM before the workers exit', async () => {
    const records = join(dir, 'drain-records.db');
    const svc = await spawn('collector', {
      GEOFENCE_DATA_DIR: dir,
      PORT: '0',
      NONCE_STORE: 'sqlite',
      // Own files: the outstanding count below must be this test's nonce only.
      NONCE_SQLITE_PATH: join(dir, 'drain-nonces.db'),
      RECORDS_PATH: records,
      RATE_LIMIT_ENABLED: 'false',
      // The lock below keeps the commit (and so the request) in flight as long as the test needs.
      SQLITE_BUSY_TIMEOUT_MS: '30000',
      GEOFENCE_ADMIN_TOKEN: ADMIN_TOKEN,
      COLLECTOR_WORKERS: '2',
    });
    const x = agents[0] as SoftAgent;
    const req = await signedRequest(c, svc.url, x);
    const lock = new Database(records);
    lock.exec('BEGIN IMMEDIATE');
    let released = false;
    try {
      const post = postMetrics(c, svc.url, req);
      // The nonce is spent right before the record goes to the writer: then the POST is in flight.
      await until(
        async () => (await http(c, `${svc.url}/nonces/stats`)).json.outstanding === 0,
        'the POST reaches its commit',
      );
      const exited = once(svc.child, 'exit');
      svc.child.kill('SIGTERM');
      // The primary and both workers have begun to shut down (each says so on stderr).
      await until(() => svc.output().split('SIGTERM, shutting down').length - 1 === 3, 'all three stop');
      lock.exec('ROLLBACK');
      released = true;
      const r = await post;
      expect(r.status).toBe(200);
      const [code] = await exited;
      expect(code).toBe(0);
      const store = new SqliteRecordStore(records);
      expect(Buffer.from((await store.get(String(r.json.record_id)))?.rawBody ?? []).equals(req.body)).toBe(
        true,
      );
      await store.close();
    } finally {
      if (!released) lock.exec('ROLLBACK');
      lock.close();
    }
  });
});

describe('configuration', () => {
  it('refuses --workers 2 with the memory nonce store (status 2, names NONCE_STORE)', async () => {
    const run = promisify(execFile);
    const err = await run(process.execPath, ['--import', 'tsx', CLI, 'collector', '--workers', '2'], {
      cwd: ROOT,
      env: { ...process.env, GEOFENCE_DATA_DIR: dir, PORT: '0', NONCE_STORE: 'memory' },
    }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/NONCE_STORE.*memory nonce store is private to one process/);
  });
});
