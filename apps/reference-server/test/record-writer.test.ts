/**
 * Durable writes off the event loop (issue 12 item 4): while a record's commit cannot finish (the
 * records database is locked by another connection, the writer thread waits for it), the collector
 * keeps answering other requests; the `POST /metrics` is acknowledged only once the commit is done,
 * and the record is then stored. With the commit on the event loop, nothing would be answered until
 * the lock wait had ended (and the POST would have failed first).
 */
import { join } from 'node:path';
import { SqliteRegistry } from '@geofence/verifier';
import Database from 'better-sqlite3';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteRecordStore } from '../src/records.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, http, postMetrics, register, signedRequest, softAgent } from './helpers/soft-agent.js';

const agent = softAgent('agent-writer');
let dir: string;
let col: RunningCollector;
let registry: SqliteRegistry;
let c: Agent;

beforeAll(async () => {
  const env = await testDataDir('record-writer');
  dir = env.dir;
  registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  await register(registry, agent);
  col = await startCollector(
    // A long lock wait: the POST must still be waiting when the other requests are answered.
    testConfig('collector', dir, { rateLimit: { enabled: false }, sqliteBusyTimeoutMs: 30_000 }),
    { log: silentLog, registry },
  );
  c = client(env.pki.ca);
});

afterAll(async () => {
  await col?.close();
  await registry?.close();
  await c?.close();
});

describe('record commits on the writer thread', () => {
  it('answers other requests while a commit waits, and acknowledges the record after it', async () => {
    const req = await signedRequest(c, col.url, agent);
    const lock = new Database(join(dir, 'records.db'));
    lock.exec('BEGIN IMMEDIATE'); // holds the write lock: the commit cannot finish
    let settled = false;
    const post = postMetrics(c, col.url, req).finally(() => {
      settled = true;
    });
    try {
      // The nonce is consumed right before the record is handed to the writer: once the stats show
      // it spent, the POST is at its commit. Each answer here is served by the event loop meanwhile.
      for (;;) {
        const st = await http(c, `${col.url}/nonces/stats`);
        expect(st.status).toBe(200);
        if (st.json.outstanding === 0) break;
      }
      const health = await http(c, `${col.url}/health`);
      expect(health.status).toBe(200);
      const nonce = await http(c, `${col.url}/nonce?public_key_hash=${agent.keyid}`);
      expect(nonce.status).toBe(200);
      expect(settled).toBe(false);
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    const r = await post;
    expect(r.status).toBe(200);
    const store = new SqliteRecordStore(join(dir, 'records.db'));
    expect(Buffer.from((await store.get(String(r.json.record_id)))?.rawBody ?? []).equals(req.body)).toBe(
      true,
    );
    await store.close();
  });
});
