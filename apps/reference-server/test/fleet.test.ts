/**
 * Fleet mode: two collector processes behind the gateway, each with its own data directory, sharing
 * one PostgreSQL (registry, records, pending enrolments, pre-registrations) and one Redis (nonces), all
 * started by this file. (b) an enrolment begun at
 * replica A completes at replica B; (c) a revoke at A is enforced by B within 1 s; (e) PostgreSQL
 * stopped under load answers 503 with Retry-After, loses no acknowledged record and recovers
 * without a restart.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createAgent, type Agent as GeofenceAgent, staticLocation } from '@geofence/agent';
import { type SwtpmInstance, startSwtpm } from '@geofence/native-tpm';
import { type NonceResponse, PostgresDatabase, PostgresRegistry } from '@geofence/verifier';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildSigned } from '../src/demo/raw.js';
import { silentLog, testDataDir } from './helpers/env.js';
import { type PathRouter, startPathRouter } from './helpers/path-router.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { type Service, spawnService, startRedis, type TestRedis } from './helpers/procs.js';
import {
  client,
  http,
  postMetrics,
  register,
  SANTA_CLARA,
  type SoftAgent,
  signedRequest,
  softAgent,
} from './helpers/soft-agent.js';

// Real processes (PostgreSQL, Redis, swtpm, two collectors, a gateway) on a shared 2-core machine.
vi.setConfig({ testTimeout: 180_000 });

const TOKEN = 'fleet-admin-token-0123456789abcdef';
const ADMIN = { authorization: `Bearer ${TOKEN}` };

let pg: TestPostgres;
let redis: TestRedis;
let swtpm: SwtpmInstance;
let db: PostgresDatabase;
let a: Service;
let b: Service;
let gw: Service;
let c: Agent;
let dir: string;
let pki: Awaited<ReturnType<typeof testDataDir>>['pki'];
let common: Record<string, string>;

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

/** `geofence <args>` as its own process; exit code and output. */
async function geofence(args: string[], env: Record<string, string>) {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(async () => {
  const env = await testDataDir('fleet');
  dir = env.dir;
  pki = env.pki;
  [pg, redis, swtpm] = await Promise.all([
    startPostgres(),
    startRedis(),
    startSwtpm({ stateDir: join(dir, 'swtpm') }),
  ]);
  db = await PostgresDatabase.open({ url: pg.url, poolMax: 2 });
  const caPaths = swtpm.ekCaCertificates.map((pem, i) => {
    const p = join(dir, `ek-ca-${i}.pem`);
    writeFileSync(p, pem);
    return p;
  });
  common = {
    // One certificate for every service; each replica has a data directory of its own, as on its own
    // host: nothing is shared but PostgreSQL and Redis.
    SSL_CERT_PATH: pki.paths.cert,
    SSL_KEY_PATH: pki.paths.key,
    SSL_CA_PATH: pki.paths.ca,
    PORT: '0',
    REGISTRY_TYPE: 'postgres',
    RECORDS_STORE: 'postgres',
    DATABASE_URL: pg.url,
    DATABASE_POOL_MAX: '4',
    NONCE_STORE: 'redis',
    REDIS_URL: redis.url,
    EK_CA_BUNDLE: caPaths.join(','),
    RATE_LIMIT_ENABLED: 'false',
    GEOFENCE_ADMIN_TOKEN: TOKEN,
  };
  // Both replicas start together: the schema migration runs once, under its advisory lock.
  const own = (name: string) => ({ ...common, GEOFENCE_DATA_DIR: mkdtempSync(join(dir, `${name}-`)) });
  [a, b] = await Promise.all([spawnService('collector', own('a')), spawnService('collector', own('b'))]);
  gw = await spawnService('gateway', { ...own('gw'), COLLECTOR_URL: `${a.url},${b.url}` });
  c = client(pki.ca);
});

afterAll(async () => {
  await gw?.kill();
  await a?.kill();
  await b?.kill();
  await db?.close();
  await Promise.all([pg?.destroy(), redis?.stop(), swtpm?.stop()]);
  await c?.close();
});

/** Registers a software-key agent in the shared registry (as an operator's tool would). */
async function registered(name: string): Promise<SoftAgent> {
  const agent = softAgent(name);
  const reg = await PostgresRegistry.open({ db });
  try {
    await register(reg, agent);
  } finally {
    await reg.close();
  }
  return agent;
}

async function storedIds(ids: string[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    'record_store',
    'SELECT id FROM geofence_records WHERE id = ANY($1)',
    [ids],
  );
  return rows.map((r) => r.id);
}

describe('(b) enrolment across replicas', () => {
  let router: PathRouter;
  let agent: GeofenceAgent;
  afterAll(async () => {
    await agent?.close();
    await router?.close();
  });

  it('pre-registered and enrolled at replica A, completed at replica B, then sends through the gateway', async () => {
    // The operator pre-registers at A; B (another data directory) learns it from PostgreSQL, and the
    // completion at B makes the agent active only because B knows the pre-registration.
    const pre = await http(c, `${a.url}/agents`, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/json' },
      body: JSON.stringify({
        agent_name: 'agent-tpm-001',
        ek: 'any-trusted-ca',
        geo_policy: { allow: [SANTA_CLARA] },
      }),
    });
    expect(pre.status).toBe(201);
    // POST /enroll goes to A, its completion to B: the pending enrolment lives in PostgreSQL.
    router = await startPathRouter(pki, c, (method, path) =>
      method === 'POST' && /^\/enroll\/[^/]+\/complete$/.test(path)
        ? b.url
        : path.startsWith('/enroll')
          ? a.url
          : gw.url,
    );
    agent = createAgent({
      name: 'agent-tpm-001',
      tpm: { tcti: swtpm.tcti },
      gateway: router.url,
      tls: { ca: pki.ca },
      location: staticLocation({ ...SANTA_CLARA, lat: 37.354, lon: -121.955, accuracy: 20 }),
      stateDir: join(dir, 'agent-state'),
      outbox: false,
      retry: { attempts: 1 },
      logger: silentLog,
    });
    const imagePath = join(dir, 'workload.js');
    writeFileSync(imagePath, 'console.log("workload");\n');
    const enrolled = await agent.enroll({ workload: { name: 'metrics-agent', version: '1.0.0', imagePath } });
    expect(enrolled.status).toBe('active');
    const steps = router.routed.filter((r) => r.startsWith('POST /enroll'));
    expect(steps).toEqual([
      `POST /enroll → ${a.url}`,
      expect.stringMatching(new RegExp(`^POST /enroll/[^ ]+/complete → ${b.url}$`)),
    ]);
    // Both replicas know the enrolled agent at once (an index miss is looked up in PostgreSQL).
    for (const replica of [a, b]) {
      const r = await http(c, `${replica.url}/agents/agent-tpm-001`, { headers: ADMIN });
      expect(r.json, `${replica.url}: ${r.text}`).toMatchObject({
        agent_name: 'agent-tpm-001',
        status: 'active',
      });
    }
    const sent = await agent.send({ cpu_percent: 3 });
    expect(await storedIds([sent.recordId])).toEqual([sent.recordId]);
    // The record API and `geofence verify-record` read the shared store, whichever replica stored it.
    const page = await http(c, `${a.url}/metrics/records?agent=agent-tpm-001&limit=10`, { headers: ADMIN });
    expect(page.json.records).toEqual([
      expect.objectContaining({
        record_id: sent.recordId,
        agent_name: 'agent-tpm-001',
        payload: expect.any(Object),
      }),
    ]);
    const verified = await geofence(['verify-record', sent.recordId, '-o', 'json', '-d', dir], common);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ valid: true, record_id: sent.recordId });
  });
});

describe('(c) revocation across replicas', () => {
  it('a revoke at A is enforced at B within 1 s (403 agent_verification)', async () => {
    const agent = await registered('agent-revoke-001');
    const prepared = await signedRequest(c, b.url, agent);
    const revoked = await http(c, `${a.url}/agents/agent-revoke-001/revoke`, {
      method: 'POST',
      headers: ADMIN,
    });
    expect(revoked.status).toBe(200);
    const t0 = Date.now();
    let nonce = await http(c, `${b.url}/nonce?public_key_hash=${agent.keyid}`);
    while (nonce.status === 200 && Date.now() - t0 < 1000) {
      await new Promise((r) => setTimeout(r, 10));
      nonce = await http(c, `${b.url}/nonce?public_key_hash=${agent.keyid}`);
    }
    const elapsed = Date.now() - t0;
    expect(nonce.status).toBe(403);
    expect(nonce.json.validation_type).toBe('agent_verification');
    expect(elapsed).toBeLessThan(1000);
    // The message signed before the revoke, with a nonce B issued, is refused by B too.
    const late = await postMetrics(c, b.url, prepared);
    expect(late.status).toBe(403);
    expect(late.json.validation_type).toBe('agent_verification');
    // The operator's CLI writes the same registry: an approval reaches both replicas too.
    const approved = await geofence(['agents', 'approve', 'agent-revoke-001', '-d', dir], common);
    expect(approved.code, approved.stderr).toBe(0);
    for (const replica of [a, b]) {
      const t1 = Date.now();
      let n = await http(c, `${replica.url}/nonce?public_key_hash=${agent.keyid}`);
      while (n.status !== 200 && Date.now() - t1 < 1000) {
        await new Promise((r) => setTimeout(r, 10));
        n = await http(c, `${replica.url}/nonce?public_key_hash=${agent.keyid}`);
      }
      expect(n.status, replica.url).toBe(200);
    }
  });
});

describe('(e) PostgreSQL outage under load', () => {
  it('answers 503 + Retry-After while it is down, loses no acknowledged record, recovers without restart', async () => {
    const agents = await Promise.all([1, 2, 3].map((i) => registered(`agent-load-00${i}`)));
    const acknowledged: string[] = [];
    const statuses: number[] = [];
    const unavailable: Array<{ status: number; retryAfter: unknown; type: unknown }> = [];
    let phase: 'before' | 'down' | 'after' = 'before';
    const okAfter = { n: 0 };
    let stop = false;
    const worker = async (agent: SoftAgent) => {
      while (!stop) {
        const n = await http(c, `${gw.url}/nonce?public_key_hash=${agent.keyid}`);
        let r: { status: number; headers: Record<string, unknown>; json: Record<string, unknown> } = n;
        if (n.status === 200) {
          const req = await buildSigned({
            agentName: agent.name,
            keyid: agent.keyid,
            signer: agent.signer,
            nonce: n.json as unknown as NonceResponse,
            metrics: { cpu_percent: 1 },
            place: SANTA_CLARA,
            now: new Date(),
            validitySeconds: 60,
          });
          r = await postMetrics(c, gw.url, req);
        }
        statuses.push(r.status);
        if (r.status === 200) {
          acknowledged.push(String(r.json.record_id));
          if (phase === 'after') okAfter.n += 1;
        } else if (r.status === 503) {
          unavailable.push({
            status: r.status,
            retryAfter: r.headers['retry-after'],
            type: r.json.validation_type,
          });
          await new Promise((res) => setTimeout(res, 50));
        }
      }
    };
    const running = agents.map(worker);
    const until = async (cond: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    };
    await until(() => acknowledged.length >= 10, 60_000);
    phase = 'down';
    await pg.stop();
    await until(() => unavailable.length >= 5, 30_000);
    const ready = await http(c, `${a.url}/ready`);
    await pg.start();
    phase = 'after';
    await until(() => okAfter.n >= 10, 60_000);
    stop = true;
    await Promise.all(running);

    expect(okAfter.n).toBeGreaterThanOrEqual(10);
    expect(unavailable.length).toBeGreaterThanOrEqual(5);
    // Only success or "dependency down": never 500, never a rejection of a valid message.
    expect(new Set(statuses)).toEqual(new Set([200, 503]));
    for (const u of unavailable) {
      expect(u.type).toBe('upstream');
      expect(Number(u.retryAfter)).toBeGreaterThan(0);
    }
    expect(ready.status).toBe(503);
    expect(ready.json.details).toMatchObject({ unavailable: expect.arrayContaining(['record_store']) });
    // Every 200 is in PostgreSQL, exactly once.
    expect(new Set(acknowledged).size).toBe(acknowledged.length);
    expect((await storedIds(acknowledged)).sort()).toEqual([...acknowledged].sort());
  });
});
