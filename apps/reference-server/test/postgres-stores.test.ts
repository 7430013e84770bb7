/**
 * Store contracts against a real PostgreSQL (a throwaway cluster for this file): the record store
 * (with the memory and SQLite stores held to the same contract), the registry (compare-and-set across
 * replicas, hot reload by LISTEN/NOTIFY, a change made by plain SQL), pending enrolments (single use
 * across replicas), idempotent migrations, and the outage rule: a stopped server is `503 upstream`
 * with Retry-After, and every store works again once it is back, without reopening.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type AgentRecordInput,
  createMemoryRecordSink,
  expectationOf,
  keyidOfPublicKey,
  PostgresDatabase,
  PostgresPendingEnrollmentStore,
  PostgresRecordStore,
  PostgresRegistry,
  type PreRegisteredAgent,
  type RecordStore,
  StoreUnavailableError,
} from '@geofence/verifier';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresPreRegistrations } from '../src/preregistrations-postgres.js';
import { SqliteRecordStore } from '../src/records.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { acceptedRecord } from './helpers/records.js';

let pg: TestPostgres;
const dbs: PostgresDatabase[] = [];
const dir = mkdtempSync(join(tmpdir(), 'gf-pgstores-'));

async function open(poolMax = 4): Promise<PostgresDatabase> {
  const db = await PostgresDatabase.open({ url: pg.url, poolMax, connectTimeoutMs: 1000 });
  dbs.push(db);
  return db;
}

beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  for (const db of dbs) await db.close().catch(() => {});
  await pg?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function agent(name: string): AgentRecordInput {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    agent_name: name,
    keyid: keyidOfPublicKey(publicKey),
    alg: 'ecdsa-p256-sha256',
    app_public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    geo_policy: { allow: [{ region: 'US' }] },
    status: 'active',
  };
}

async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

const recordStores: Record<string, () => Promise<RecordStore>> = {
  memory: async () => createMemoryRecordSink(),
  sqlite: async () => new SqliteRecordStore(join(dir, `records-${Date.now()}-${Math.random()}.db`)),
  postgres: async () => {
    const db = await open();
    await db.query('record_store', 'TRUNCATE geofence_records');
    return new PostgresRecordStore(db);
  },
};

describe.each(Object.keys(recordStores))('%s record store (RecordStore contract)', (kind) => {
  it('keeps every field of the accepted record and pages with a cursor', async () => {
    const store = await recordStores[kind]!();
    const sig = { keyid: 'k', alg: 'ecdsa-p256-sha256', created: 1700000000, components: ['@method'] };
    const first = acceptedRecord(Buffer.from('{"n":0,"nonce":"x"}'), {
      receivedAt: '2026-01-02T03:04:05.678Z',
      httpSignature: sig,
      verdict: {
        checks: ['request_validation', 'geolocation_policy'],
        geo: [{ matched: { region: 'US' }, matched_by: 'name' }],
      },
      headers: { 'content-type': 'application/json', signature: 'geo=:AA==:' },
    });
    const ids = [await store.insert(first)];
    for (let i = 1; i < 5; i++) {
      ids.push(
        await store.insert(
          acceptedRecord(Buffer.from(`{"n":${i}}`), { agentName: i % 2 ? 'agent-b' : 'agent-a' }),
        ),
      );
    }
    expect(new Set(ids).size).toBe(5);
    expect(await store.count()).toBe(5);
    const got = await store.get(ids[0] as string);
    expect(got).toMatchObject({
      id: ids[0],
      agentName: 'agent-a',
      keyid: 'k',
      receivedAt: '2026-01-02T03:04:05.678Z',
      payload: { n: 0, nonce: 'x' },
      httpSignature: sig,
      verdict: first.verdict,
      headers: first.headers,
    });
    expect(Buffer.from(got?.rawBody ?? []).toString()).toBe('{"n":0,"nonce":"x"}');
    expect(await store.get('rec_missing')).toBeUndefined();
    const p1 = await store.list({ limit: 2 });
    expect(p1.records.map((r) => r.id)).toEqual(ids.slice(0, 2));
    expect(p1.next).not.toBeNull();
    const p2 = await store.list({ limit: 10, after: p1.next ?? 0 });
    expect(p2.records.map((r) => r.id)).toEqual(ids.slice(2));
    expect(p2.next).toBeNull();
    expect((await store.list({ limit: 10, agent: 'agent-b' })).records.map((r) => r.id)).toEqual([
      ids[1],
      ids[3],
    ]);
    expect((await store.list({ limit: 10, since: '2999-01-01T00:00:00.000Z' })).records).toEqual([]);
    expect(
      (await store.list({ limit: 10, since: '2026-01-02T03:04:05.679Z' })).records.map((r) => r.id),
    ).toEqual(ids.slice(1));
    await store.ping();
    await store.close();
  });
});

describe('PostgreSQL migrations', () => {
  it('are idempotent and safe when replicas start together', async () => {
    const opened = await Promise.all([open(1), open(1), open(1)]);
    const { rows } = await opened[0]!.query<{ version: number }>(
      'registry',
      'SELECT version FROM geofence_schema ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toEqual(
      Array.from({ length: PostgresDatabase.schemaVersion }, (_, i) => i + 1),
    );
    // A database a newer release migrated is refused, not written with an older schema's idea of it.
    const next = PostgresDatabase.schemaVersion + 1;
    await opened[0]!.query('registry', 'INSERT INTO geofence_schema (version) VALUES ($1)', [next]);
    try {
      await expect(open(1)).rejects.toThrow(
        `database schema version ${next} is newer than this release knows`,
      );
    } finally {
      await opened[0]!.query('registry', 'DELETE FROM geofence_schema WHERE version = $1', [next]);
    }
  });
});

describe('PostgreSQL registry', () => {
  it('implements the Registry contract', async () => {
    const reg = await PostgresRegistry.open({ db: await open() });
    const a = agent('pg-agent-001');
    const rec = await reg.put(a);
    expect(rec.enrolled_at).toBe(rec.updated_at);
    expect((await reg.getByKeyid(a.keyid))?.agent_name).toBe('pg-agent-001');
    expect((await reg.setStatus('pg-agent-001', 'revoked')).enrolled_at).toBe(rec.enrolled_at);
    const rotated = agent('pg-agent-001');
    await reg.put(rotated);
    expect(await reg.getByKeyid(a.keyid)).toBeUndefined();
    expect((await reg.getByKeyid(rotated.keyid))?.status).toBe('active');
    await expect(reg.put({ ...rotated, agent_name: 'pg-agent-002' })).rejects.toMatchObject({
      code: 'keyid_conflict',
    });
    await expect(reg.put({ ...a, alg: 'rsa-v1_5-sha256' })).rejects.toMatchObject({ code: 'invalid_record' });
    await expect(reg.setStatus('nobody', 'active')).rejects.toMatchObject({ code: 'not_found' });
    expect(await reg.delete('pg-agent-001')).toBe(true);
    expect(await reg.delete('pg-agent-001')).toBe(false);
    await reg.close();
  });

  it('compare-and-set across replicas: of concurrent first enrolments for one name exactly one wins', async () => {
    const replicas = await Promise.all(
      [1, 2, 3, 4].map(async () => PostgresRegistry.open({ db: await open() })),
    );
    const candidates = replicas.map(() => agent('pg-race-001'));
    const results = await Promise.allSettled(candidates.map((c, i) => replicas[i]!.putIfMatch(c, null)));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'conflict' });
    const winner = candidates[won[0] as number]!;
    // the winner's record, seen by every replica; a stale expectation loses too
    for (const reg of replicas) expect((await reg.getByName('pg-race-001'))?.keyid).toBe(winner.keyid);
    const current = await replicas[1]!.getByName('pg-race-001');
    await replicas[2]!.putIfMatch(agent('pg-race-001'), expectationOf(current));
    await expect(replicas[3]!.putIfMatch(agent('pg-race-001'), expectationOf(current))).rejects.toMatchObject(
      {
        code: 'conflict',
      },
    );
    for (const reg of replicas) await reg.close();
  });

  it('hot reload by NOTIFY: a revoke on one replica, or by plain SQL, is seen by another within 1 s', async () => {
    const dbA = await open();
    const a = await PostgresRegistry.open({ db: dbA });
    const b = await PostgresRegistry.open({ db: await open() });
    const x = agent('pg-hot-001');
    await a.put(x);
    // Unknown to B's index until the notification: looked up in the database, so known at once.
    expect((await b.getByKeyid(x.keyid))?.status).toBe('active');
    await a.setStatus('pg-hot-001', 'revoked');
    expect(await until(async () => (await b.getByKeyid(x.keyid))?.status === 'revoked', 1000)).toBe(true);
    await dbA.query(
      'registry',
      `UPDATE geofence_agents SET record = jsonb_set(record, '{status}', '"active"'), status = 'active' WHERE agent_name = $1`,
      ['pg-hot-001'],
    );
    expect(await until(async () => (await b.getByName('pg-hot-001'))?.status === 'active', 1000)).toBe(true);
    // A lost listener (its backend terminated) misses notifications: B must not keep serving the
    // stale status — it reads the database until it listens again, then reloads everything.
    const killed = await dbA.query(
      'registry',
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN geofence_registry'",
    );
    expect(killed.rowCount).toBeGreaterThanOrEqual(2);
    await a.setStatus('pg-hot-001', 'revoked');
    expect(await until(async () => (await b.getByKeyid(x.keyid))?.status === 'revoked', 1000)).toBe(true);
    await a.setStatus('pg-hot-001', 'active');
    expect(await until(async () => (await b.getByKeyid(x.keyid))?.status === 'active', 1000)).toBe(true);
    await a.close();
    await b.close();
  });
});

describe('PostgreSQL pending enrolments', () => {
  it('are taken once across replicas; spent, expired and unknown ids are told apart', async () => {
    const one = new PostgresPendingEnrollmentStore(await open());
    const two = new PostgresPendingEnrollmentStore(await open());
    const record = {
      request: { agent_name: 'pg-enrol-001' } as never,
      ek_hash: 'e'.repeat(64),
      secret: 'c2VjcmV0',
      nonce: 'bm9uY2U',
    };
    const now = new Date();
    await one.put('enr-1', record, new Date(now.getTime() + 60_000));
    const takes = await Promise.all([one.take('enr-1', now), two.take('enr-1', now), two.take('enr-1', now)]);
    expect(takes.filter((t) => t.status === 'ok')).toEqual([{ status: 'ok', value: record }]);
    expect(takes.filter((t) => t.status === 'used')).toHaveLength(2);
    await one.put('enr-2', record, new Date(now.getTime() - 1));
    expect(await two.take('enr-2', now)).toEqual({ status: 'expired' });
    expect(await two.take('enr-2', now)).toEqual({ status: 'used' });
    expect(await two.take('enr-none', now)).toEqual({ status: 'unknown' });
  });
});

describe('PostgreSQL pre-registrations', () => {
  it('an upsert at one replica reaches the enrolment policy another replica watches', async () => {
    const one = new PostgresPreRegistrations(await open());
    const two = new PostgresPreRegistrations(await open());
    const policy: PreRegisteredAgent[] = [];
    const errors: Error[] = [];
    const stop = await two.watch(policy, (e) => errors.push(e));
    try {
      await one.upsert({
        agent_name: 'pg-pre-001',
        ek: 'any-trusted-ca',
        geo_policy: { allow: [{ region: 'US' }] },
      });
      expect(await until(async () => policy.length === 1, 1000)).toBe(true);
      expect(policy).toEqual([
        { agentName: 'pg-pre-001', ek: 'any-trusted-ca', geoPolicy: { allow: [{ region: 'US' }] } },
      ]);
      await one.upsert({
        agent_name: 'pg-pre-001',
        ek: { hash: 'a'.repeat(64) },
        geo_policy: { allow: [{ region: 'DE' }] },
      });
      expect(await until(async () => policy[0]?.geoPolicy.allow?.[0]?.region === 'DE', 1000)).toBe(true);
      expect(policy[0]?.ek).toEqual({ hash: 'a'.repeat(64) });
      await expect(
        one.upsert({ agent_name: 'bad name!', ek: 'any-trusted-ca', geo_policy: {} } as never),
      ).rejects.toThrow();
      expect((await two.list()).map((p) => p.agent_name)).toEqual(['pg-pre-001']);
      expect(errors).toEqual([]);
    } finally {
      await stop();
    }
  });
});

describe('PostgreSQL outage', () => {
  it('is 503 upstream with Retry-After while the server is down, and heals without reopening', async () => {
    const db = await open();
    const store = new PostgresRecordStore(db);
    const reg = await PostgresRegistry.open({ db, reconnectDelayMs: 100 });
    const pending = new PostgresPendingEnrollmentStore(db);
    const x = agent('pg-outage-001');
    await reg.put(x);
    await store.insert(acceptedRecord(Buffer.from('{"before":1}')));
    await pg.stop();
    try {
      const failures = await Promise.allSettled([
        store.insert(acceptedRecord(Buffer.from('{"during":1}'))),
        store.list({ limit: 1 }),
        store.ping(),
        reg.getByKeyid(x.keyid),
        reg.setStatus('pg-outage-001', 'revoked'),
        pending.take('any', new Date()),
      ]);
      for (const f of failures) {
        expect(f.status).toBe('rejected');
        const err = (f as PromiseRejectedResult).reason as StoreUnavailableError;
        expect(err).toBeInstanceOf(StoreUnavailableError);
        expect(err.status).toBe(503);
        expect(err.validationType).toBe('upstream');
        expect(err.retryAfter).toBeGreaterThan(0);
      }
    } finally {
      await pg.start();
    }
    expect(
      await until(
        async () =>
          store.ping().then(
            () => true,
            () => false,
          ),
        10_000,
      ),
    ).toBe(true);
    await store.insert(acceptedRecord(Buffer.from('{"after":1}')));
    expect(
      await until(
        async () =>
          reg.getByKeyid(x.keyid).then(
            (r) => r?.status === 'active',
            () => false,
          ),
        10_000,
      ),
    ).toBe(true);
    // the listener is back: a change by another replica reaches this one again
    const other = await PostgresRegistry.open({ db: await open() });
    await other.setStatus('pg-outage-001', 'revoked');
    expect(await until(async () => (await reg.getByKeyid(x.keyid))?.status === 'revoked', 3000)).toBe(true);
    await other.close();
    await reg.close();
  });
});

describe('PostgreSQL frozen', () => {
  it('a server that stops answering is 503 after the statement timeout, not a hang, and heals', async () => {
    const db = await PostgresDatabase.open({
      url: pg.url,
      poolMax: 2,
      statementTimeoutMs: 300,
      connectTimeoutMs: 500,
    });
    dbs.push(db);
    const store = new PostgresRecordStore(db);
    await store.ping();
    await pg.freeze(true);
    let failure: unknown;
    try {
      failure = await store.insert(acceptedRecord(Buffer.from('{"frozen":1}'))).then(
        () => undefined,
        (e: unknown) => e,
      );
    } finally {
      await pg.freeze(false);
    }
    expect(failure).toBeInstanceOf(StoreUnavailableError);
    expect((failure as StoreUnavailableError).status).toBe(503);
    expect(
      await until(
        async () =>
          store.ping().then(
            () => true,
            () => false,
          ),
        10_000,
      ),
    ).toBe(true);
  });
});

describe('PostgreSQL backup and restore (docs/operations.md)', () => {
  it('pg_dump -Fc of the database and pg_restore --clean bring registry and records back', async () => {
    const run = promisify(execFile);
    const db = await open();
    await db.query('registry', 'CREATE DATABASE geofence_backup');
    const url = pg.url.replace(/\/postgres$/, '/geofence_backup');
    const src = await PostgresDatabase.open({ url, poolMax: 2 });
    dbs.push(src);
    const reg = await PostgresRegistry.open({ db: src });
    const records = new PostgresRecordStore(src);
    const x = agent('pg-backup-001');
    await reg.put(x);
    const kept = await records.insert(acceptedRecord(Buffer.from('{"kept":1}')));
    const dump = join(dir, 'geofence.dump');
    await run(join(pg.bin, 'pg_dump'), ['--format=custom', `--file=${dump}`, url]);
    // Changes after the backup: gone after the restore.
    await reg.setStatus('pg-backup-001', 'revoked');
    const lost = await records.insert(acceptedRecord(Buffer.from('{"lost":1}')));
    await reg.close();
    await run(join(pg.bin, 'pg_restore'), ['--clean', '--if-exists', `--dbname=${url}`, dump]);
    // Reopening runs the migrations again: a restored schema is current, nothing is re-applied.
    const restored = await PostgresDatabase.open({ url, poolMax: 2 });
    dbs.push(restored);
    const reg2 = await PostgresRegistry.open({ db: restored });
    const records2 = new PostgresRecordStore(restored);
    expect((await reg2.getByKeyid(x.keyid))?.status).toBe('active');
    expect(await records2.get(lost)).toBeUndefined();
    expect(Buffer.from((await records2.get(kept))?.rawBody ?? []).toString()).toBe('{"kept":1}');
    // The notify trigger came back with the table: another replica still hears changes.
    const other = await PostgresRegistry.open({ db: src });
    await other.setStatus('pg-backup-001', 'revoked');
    expect(await until(async () => (await reg2.getByKeyid(x.keyid))?.status === 'revoked', 1000)).toBe(true);
    await other.close();
    await reg2.close();
  });
});

describe('packages/sdk-verifier/README.md', () => {
  it('the fleet-store example runs against PostgreSQL and prints what it found', async () => {
    const readme = readFileSync(new URL('../../../packages/sdk-verifier/README.md', import.meta.url), 'utf8');
    const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((m) => m[1] as string)
      .find((b) => b.includes('PostgresDatabase.open'));
    expect(block, 'the README has the fleet-store example').toBeDefined();
    const body = (block as string).replace(/^import .*$/m, '');
    const printed: string[] = [];
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
      ...args: string[]
    ) => (...values: unknown[]) => Promise<void>;
    await new AsyncFunction(
      'PostgresDatabase',
      'PostgresRecordStore',
      'PostgresRegistry',
      'process',
      'console',
      body,
    )(
      PostgresDatabase,
      PostgresRecordStore,
      PostgresRegistry,
      { env: { DATABASE_URL: pg.url } },
      { log: (line: string) => printed.push(line) },
    );
    const db = await open();
    const agents = (await db.query<{ n: string }>('registry', 'SELECT count(*) AS n FROM geofence_agents'))
      .rows[0]?.n;
    const records = (await db.query<{ n: string }>('registry', 'SELECT count(*) AS n FROM geofence_records'))
      .rows[0]?.n;
    expect(printed).toEqual([`${Math.min(Number(records), 100)} records, ${agents} agents`]);
  });
});
