/**
 * Faults: a collector killed with SIGKILL under load and restarted loses no acknowledged record and
 * accepts no nonce twice (SQLite nonce store); a gateway whose collector is stopped answers 503
 * problem+json and recovers when the collector is back.
 */
import { join } from 'node:path';
import { isProblem, type NonceResponse, SqliteRegistry } from '@geofence/verifier';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildSigned, type RawRequest } from '../src/demo/raw.js';
import { SqliteRecordStore } from '../src/records.js';
import { testDataDir } from './helpers/env.js';
import { freePort, type Service, spawnService } from './helpers/procs.js';
import { client, http, postMetrics, register, SANTA_CLARA, softAgent } from './helpers/soft-agent.js';

// Real processes (swtpm, collectors, tsx start-up) on a shared 2-core machine: generous per-test bound.
vi.setConfig({ testTimeout: 150_000 });

const agents = [softAgent('agent-a'), softAgent('agent-b'), softAgent('agent-c'), softAgent('agent-d')];
let dir: string;
let c: Agent;
let env: Record<string, string>;
const running: Service[] = [];

beforeAll(async () => {
  const t = await testDataDir('crash');
  dir = t.dir;
  c = client(t.pki.ca);
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  for (const a of agents) await register(registry, a);
  await registry.close();
  env = {
    GEOFENCE_DATA_DIR: dir,
    NONCE_STORE: 'sqlite',
    RATE_LIMIT_ENABLED: 'false',
    GEOFENCE_ADMIN_TOKEN: 'crash-admin-token-0123456789abcdef',
  };
});

afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  await c?.close();
});

async function start(port: number): Promise<Service> {
  const s = await spawnService('collector', { ...env, PORT: String(port) });
  running.push(s);
  return s;
}

/** The nonce of a stored body. */
const nonceOf = (body: Buffer) => (JSON.parse(body.toString('utf8')) as { nonce: string }).nonce;

describe('collector killed with SIGKILL under load', () => {
  it('loses no acknowledged record and accepts no nonce twice after restart', async () => {
    const port = await freePort();
    const first = await start(port);
    // Pre-issue nonces and pre-sign every message (16 outstanding per agent, 4 agents).
    const prepared: RawRequest[] = [];
    for (const a of agents) {
      for (let i = 0; i < 16; i++) {
        const n = await http(c, `${first.url}/nonce?public_key_hash=${a.keyid}`);
        prepared.push(
          await buildSigned({
            agentName: a.name,
            keyid: a.keyid,
            signer: a.signer,
            nonce: n.json as unknown as NonceResponse,
            metrics: { i },
            place: SANTA_CLARA,
            now: new Date(),
            validitySeconds: 120,
          }),
        );
      }
    }
    const acknowledged = new Map<string, string>(); // nonce → record id
    let cursor = 0;
    let killed = false;
    const worker = async () => {
      while (cursor < prepared.length) {
        const req = prepared[cursor++] as RawRequest;
        const r = await postMetrics(c, first.url, req).catch(() => undefined);
        if (r?.status === 200) acknowledged.set(nonceOf(req.body), String(r.json.record_id));
        if (!killed && acknowledged.size >= 20) {
          killed = true;
          first.child.kill('SIGKILL'); // mid-flight: other workers have requests outstanding
        }
        if (killed) return;
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    expect(killed).toBe(true);
    expect(acknowledged.size).toBeGreaterThanOrEqual(20);

    // Restart on the same data directory.
    const second = await start(port);
    const store = new SqliteRecordStore(join(dir, 'records.db'));
    for (const [nonce, id] of acknowledged) {
      const rec = await store.get(id);
      expect(rec, `acknowledged record ${id} lost`).toBeDefined();
      expect(nonceOf(Buffer.from(rec?.rawBody ?? Buffer.from('{}')))).toBe(nonce);
    }

    // Replay every prepared message: no acknowledged nonce is accepted again; overall each nonce at most once.
    const results = await Promise.all(prepared.map((req) => postMetrics(c, second.url, req)));
    results.forEach((r, i) => {
      const nonce = nonceOf((prepared[i] as RawRequest).body);
      if (acknowledged.has(nonce)) {
        expect(r.status).toBe(401);
        expect(r.json.validation_type).toBe('nonce_validation');
      } else {
        expect([200, 401]).toContain(r.status);
      }
    });
    const stored = (await store.list({ limit: 1000 })).records.map((r) => nonceOf(Buffer.from(r.rawBody)));
    expect(new Set(stored).size).toBe(stored.length);
    await store.close();
  });
});

describe('gateway in front of a stopped collector', () => {
  it('answers 503 problem+json, then recovers when the collector is back', async () => {
    const port = await freePort();
    let collector = await start(port);
    const gw = await spawnService('gateway', {
      ...env,
      PORT: '0',
      COLLECTOR_URL: collector.url,
      GATEWAY_UPSTREAM_TIMEOUT_MS: '2000',
    });
    running.push(gw);
    const a = agents[0]!;
    const url = `${gw.url}/nonce?public_key_hash=${a.keyid}`;
    expect((await http(c, url)).status).toBe(200);
    await collector.kill('SIGTERM');
    const down = await http(c, url);
    expect(down.status).toBe(503);
    expect(down.headers['content-type']).toContain('application/problem+json');
    expect(isProblem(down.json)).toBe(true);
    expect(down.json).toMatchObject({ validation_type: 'upstream', rejected_by: 'gateway' });
    expect(down.headers['retry-after']).toBeDefined();
    collector = await start(port);
    expect((await http(c, url)).status).toBe(200);
  });
});
