/**
 * Store faults map to one error: StoreUnavailableError (503 `upstream`, Retry-After, the store
 * named), never a raw driver error that would become `500 internal`, and never a success. Real
 * SQLite files locked by a second connection, a read-only connection, and a real redis-server stopped
 * under a client configured as the reference collector configures it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GeofenceError,
  keyidOfPublicKey,
  RedisNonceStore,
  SqliteFaultGuard,
  SqliteNonceStore,
  SqliteRegistry,
  STORE_RETRY_AFTER_SECONDS,
  StoreUnavailableError,
} from '../src/index.js';
import { startRedis } from './helpers/redis.js';

const KEYID = 'a'.repeat(64);
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'geofence-faults-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `fn` and returns what it threw plus how long it took. */
async function failure(fn: () => Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const t = Date.now();
  try {
    await fn();
  } catch (err) {
    return { err, ms: Date.now() - t };
  }
  throw new Error('expected a failure');
}

function expectStoreFault(err: unknown, store: string): void {
  expect(err).toBeInstanceOf(StoreUnavailableError);
  const e = err as StoreUnavailableError;
  expect(e).toBeInstanceOf(GeofenceError);
  expect(e.store).toBe(store);
  const p = e.toProblem({ rejectedBy: 'collector', requestId: 'r' });
  expect(p).toMatchObject({ status: 503, validation_type: 'upstream', details: { dependency: store } });
  expect(e.retryAfter).toBe(STORE_RETRY_AFTER_SECONDS);
  // The driver's message stays in `cause` (logs), not in the body.
  expect(JSON.stringify(p)).not.toMatch(/SQLITE|ECONNREFUSED|Stream/);
}

describe('SqliteFaultGuard', () => {
  it('maps SQLITE_READONLY to StoreUnavailableError and passes statement errors unchanged', () => {
    const path = join(dir, 'ro.db');
    const rw = new Database(path);
    rw.exec('CREATE TABLE t (x INTEGER PRIMARY KEY)');
    rw.exec('INSERT INTO t VALUES (1)');
    const ro = new Database(path, { readonly: true });
    const guard = new SqliteFaultGuard(ro, 'record_store');
    let err: unknown;
    try {
      guard.run(() => ro.prepare('INSERT INTO t VALUES (2)').run());
    } catch (e) {
      err = e;
    }
    expectStoreFault(err, 'record_store');
    expect((err as Error).cause).toMatchObject({ code: 'SQLITE_READONLY' });
    const rwGuard = new SqliteFaultGuard(rw, 'record_store');
    expect(() => rwGuard.run(() => rw.prepare('INSERT INTO t VALUES (1)').run())).toThrow(
      expect.objectContaining({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' }),
    );
    ro.close();
    rw.close();
  });
});

describe('SQLite stores under a lock held by another connection', () => {
  it('nonce store: consume fails with StoreUnavailableError after the busy timeout, then fast, and works after', async () => {
    const path = join(dir, 'nonces.db');
    const store = await SqliteNonceStore.open({ path, busyTimeoutMs: 200 });
    const { nonce } = await store.issue(KEYID);
    const locker = new Database(path);
    locker.exec('BEGIN EXCLUSIVE');
    const first = await failure(() => store.consume(KEYID, nonce));
    expectStoreFault(first.err, 'nonce_store');
    expect(first.ms).toBeGreaterThanOrEqual(150);
    expect(first.ms).toBeLessThan(1000);
    // While the lock is still held, further calls do not wait on the event loop again.
    const second = await failure(() => store.consume(KEYID, nonce));
    expectStoreFault(second.err, 'nonce_store');
    expect(second.ms).toBeLessThan(100);
    await expect(store.issue(KEYID)).rejects.toBeInstanceOf(StoreUnavailableError);
    locker.exec('ROLLBACK');
    // The failed consume spent nothing: the nonce is consumed exactly once, now.
    expect(await store.consume(KEYID, nonce)).toBe('ok');
    expect(await store.consume(KEYID, nonce)).toBe('reused');
    locker.close();
    await store.close();
  });

  it('registry: a write fails with StoreUnavailableError (not RegistryError storage), reads go on', async () => {
    const path = join(dir, 'registry.db');
    const reg = await SqliteRegistry.open({ path, busyTimeoutMs: 200 });
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyid = keyidOfPublicKey(publicKey);
    const locker = new Database(path);
    locker.exec('BEGIN EXCLUSIVE');
    const { err } = await failure(() =>
      reg.put({
        agent_name: 'agent-1',
        keyid,
        alg: 'ecdsa-p256-sha256',
        app_public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        geo_policy: { allow: [{ region: 'US' }] },
        status: 'active',
      }),
    );
    expectStoreFault(err, 'registry');
    // WAL: readers are not blocked by a writer, so lookups keep working.
    expect(await reg.getByKeyid(keyid)).toBeUndefined();
    locker.exec('ROLLBACK');
    locker.close();
    await reg.close();
  });
});

describe('RedisNonceStore with Redis gone', () => {
  it('fails issue, consume, claimRequest and stats with StoreUnavailableError at once', async () => {
    const redis = await startRedis();
    const client = new Redis(redis.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      commandTimeout: 500,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: () => 50,
    });
    client.on('error', () => {});
    await client.connect();
    const store = new RedisNonceStore({ client, ownsClient: true });
    const { nonce } = await store.issue(KEYID);
    await redis.stop();
    for (const op of [
      () => store.consume(KEYID, nonce),
      () => store.issue(KEYID),
      // The single-use mark of a signed GET /nonce: an outage is 503, never a 500.
      () => store.claimRequest(KEYID, 'request-1', new Date(Date.now() + 60_000)),
      () => store.stats(),
    ]) {
      const { err, ms } = await failure(op);
      expectStoreFault(err, 'nonce_store');
      expect(ms).toBeLessThan(1000);
    }
    await store.close();
  });
});
