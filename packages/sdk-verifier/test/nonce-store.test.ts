/**
 * One conformance suite, run against the memory, SQLite and Redis nonce stores.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkMovement,
  MemoryNonceStore,
  type NonceStore,
  type NonceStoreOptions,
  RedisNonceStore,
  SqliteNonceStore,
} from '../src/index.js';
import { type RunningRedis, startRedis } from './helpers/redis.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const TTL = 300;
const CAP = 4;

let redis: RunningRedis;
let client: Redis;
let dir: string;
let seq = 0;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis({ port: redis.port, host: '127.0.0.1' });
  dir = mkdtempSync(join(tmpdir(), 'geofence-nonce-'));
});

afterAll(async () => {
  await client?.quit();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

class Clock {
  t = Date.UTC(2026, 10, 28, 21, 0, 0);
  now = () => this.t;
  advance(ms: number) {
    this.t += ms;
  }
}

type Factory = (o: NonceStoreOptions) => Promise<NonceStore>;
const factories: Record<string, Factory> = {
  memory: async (o) => new MemoryNonceStore(o),
  sqlite: async (o) => SqliteNonceStore.open({ ...o, path: join(dir, `n${++seq}.db`) }),
  redis: async (o) => new RedisNonceStore({ ...o, client, prefix: `t${++seq}:` }),
};

async function consumeAll(store: NonceStore, keyid: string, nonces: string[]) {
  const out: string[] = [];
  for (const n of nonces) out.push(await store.consume(keyid, n));
  return out;
}

describe.each(Object.keys(factories))('%s nonce store (conformance)', (name) => {
  const make = factories[name]!;
  const setup = async (extra: Partial<NonceStoreOptions> = {}) => {
    const clock = new Clock();
    const store = await make({ ttlSeconds: TTL, maxOutstanding: CAP, now: clock.now, ...extra });
    return { clock, store };
  };

  it('issues 32-byte base64url nonces that are unique', async () => {
    const { store, clock } = await setup({ maxOutstanding: 1000 });
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const n = await store.issue(A);
      expect(n.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(n.nonce, 'base64url')).toHaveLength(32);
      expect(n.expiresIn).toBe(TTL);
      expect(n.expiresAt.getTime()).toBe(clock.t + TTL * 1000);
      seen.add(n.nonce);
    }
    expect(seen.size).toBe(300);
    await store.close();
  });

  it('is single use and bound to its keyid', async () => {
    const { store } = await setup();
    const { nonce } = await store.issue(A);
    expect(await store.consume(B, nonce)).toBe('wrong_agent');
    // a wrong agent cannot burn the nonce
    expect(await store.consume(A, nonce)).toBe('ok');
    expect(await store.consume(A, nonce)).toBe('reused');
    expect(await store.consume(B, nonce)).toBe('wrong_agent');
    expect(await store.consume(A, Buffer.alloc(32).toString('base64url'))).toBe('unknown');
    expect(await store.consume(A, '')).toBe('unknown');
    const s = await store.stats();
    expect(s.consumed).toBe(1);
    expect(s.rejected).toMatchObject({ wrong_agent: 2, reused: 1, unknown: 2 });
    await store.close();
  });

  it('expires nonces after the TTL', async () => {
    const { store, clock } = await setup();
    const n1 = await store.issue(A);
    const n2 = await store.issue(A);
    clock.advance(TTL * 1000 - 1);
    expect(await store.consume(A, n1.nonce)).toBe('ok');
    clock.advance(1);
    expect(await store.consume(A, n2.nonce)).toBe('expired');
    expect((await store.stats()).outstanding).toBe(0);
    await store.close();
  });

  it('caps outstanding nonces per agent, evicting the oldest', async () => {
    const { store } = await setup();
    const issued = [];
    for (let i = 0; i < CAP + 2; i++) issued.push((await store.issue(A)).nonce);
    const other = (await store.issue(B)).nonce;
    const st = await store.stats({ perAgent: true });
    expect(st.outstanding).toBe(CAP + 1);
    expect(st.perAgent).toEqual({ [A]: CAP, [B]: 1 });
    expect(JSON.stringify(st)).not.toContain(other);
    expect(st.evicted).toBe(2);
    expect(await consumeAll(store, A, issued)).toEqual(['unknown', 'unknown', 'ok', 'ok', 'ok', 'ok']);
    expect(await store.consume(B, other)).toBe('ok');
    await store.close();
  });

  it('does not count expired nonces against the cap', async () => {
    const { store, clock } = await setup();
    for (let i = 0; i < CAP; i++) await store.issue(A);
    clock.advance(TTL * 1000);
    const fresh = [];
    for (let i = 0; i < CAP; i++) fresh.push((await store.issue(A)).nonce);
    expect((await store.stats()).evicted).toBe(0);
    expect(await consumeAll(store, A, fresh)).toEqual(Array(CAP).fill('ok'));
    await store.close();
  });

  it('attacker issuing for a victim keyid evicts only the victim overflow, never other agents or signed pools', async () => {
    const { store } = await setup();
    const victimSigned = [];
    for (let i = 0; i < CAP; i++) victimSigned.push((await store.issue(A, { authenticated: true })).nonce);
    const victimAnon = [(await store.issue(A)).nonce, (await store.issue(A)).nonce];
    const bystander = [];
    for (let i = 0; i < CAP; i++) bystander.push((await store.issue(B)).nonce);
    // CAP - 2 free places + 1: exactly the victim's oldest unauthenticated nonce goes.
    for (let i = 0; i < CAP - 1; i++) await store.issue(A);
    expect(await store.consume(A, victimAnon[0]!)).toBe('unknown');
    expect(await store.consume(A, victimAnon[1]!)).toBe('ok');
    // flooding evicts the unauthenticated pool only
    for (let i = 0; i < 50; i++) await store.issue(A);
    expect(await consumeAll(store, A, victimSigned)).toEqual(Array(CAP).fill('ok'));
    expect(await consumeAll(store, B, bystander)).toEqual(Array(CAP).fill('ok'));
    const st = await store.stats({ perAgent: true });
    expect(st.perAgent?.[A]).toBe(CAP);
    await store.close();
  });

  it('1000 parallel consumes of one nonce: exactly one ok', async () => {
    const { store } = await setup();
    const { nonce } = await store.issue(A);
    const results = await Promise.all(Array.from({ length: 1000 }, () => store.consume(A, nonce)));
    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r === 'reused')).toHaveLength(999);
    await store.close();
  });

  it('claims a signed request once per keyid while its mark lasts, then again after it lapses', async () => {
    const { store } = await setup({ now: Date.now });
    const until = new Date(Date.now() + 400);
    const claims = await Promise.all(
      Array.from({ length: 200 }, () => store.claimRequest(A, 'req-1', until)),
    );
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await store.claimRequest(A, 'req-2', until)).toBe(true);
    expect(await store.claimRequest(B, 'req-1', until)).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    await store.cleanup();
    expect(await store.claimRequest(A, 'req-1', new Date(Date.now() + 60_000))).toBe(true);
    expect(await store.claimRequest(A, 'req-1', new Date(Date.now() + 60_000))).toBe(false);
    await store.close();
  });

  it('keeps the last accepted position per keyid with an atomic compare-and-set', async () => {
    const { store } = await setup();
    const p1 = { lat: 37.354, lon: -121.955, accuracy: 8.5, at: Date.UTC(2026, 10, 28, 21, 0, 0) };
    const p2 = { lat: 37.355, lon: -121.956, accuracy: 12, at: p1.at + 1000 };
    const until = new Date(Date.now() + 3_600_000);
    expect(await store.lastPosition(A)).toBeUndefined();
    expect(await store.replacePosition(A, undefined, p1, until)).toBe(true);
    // "No position yet" is stale now: the compare fails and nothing changes.
    expect(await store.replacePosition(A, undefined, p2, until)).toBe(false);
    expect(await store.lastPosition(A)).toEqual(p1);
    expect(await store.replacePosition(A, { ...p1, accuracy: 9 }, p2, until)).toBe(false);
    expect(await store.replacePosition(A, p1, p2, until)).toBe(true);
    expect(await store.lastPosition(A)).toEqual(p2);
    expect(await store.lastPosition(B)).toBeUndefined();
    // Many replicas' requests racing from the same previous position: exactly one wins.
    const wins = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        store.replacePosition(A, p2, { ...p2, at: p2.at + i + 1 }, until),
      ),
    );
    expect(wins.filter(Boolean)).toHaveLength(1);
    await store.close();
  });

  it('lets a position lapse at its end; a new first position then takes its place', async () => {
    const { store } = await setup({ now: Date.now });
    const p = { lat: 1, lon: 2, accuracy: 3, at: Date.now() };
    expect(await store.replacePosition(A, undefined, p, new Date(Date.now() + 300))).toBe(true);
    expect(await store.lastPosition(A)).toEqual(p);
    await new Promise((r) => setTimeout(r, 400));
    expect(await store.lastPosition(A)).toBeUndefined();
    await store.cleanup();
    const q = { ...p, lat: 5 };
    expect(await store.replacePosition(A, undefined, q, new Date(Date.now() + 60_000))).toBe(true);
    expect(await store.lastPosition(A)).toEqual(q);
    await store.close();
  });

  it('two conflicting first locations at once: one is accepted, the other is implausible', async () => {
    const { store } = await setup();
    const at = Date.UTC(2026, 10, 28, 21, 0, 0);
    const outcomes = await Promise.allSettled([
      checkMovement(store, A, 'agent-a', { lat: 37.354, lon: -121.955, accuracy: 10, at }, 1000),
      checkMovement(store, A, 'agent-a', { lat: 40.7128, lon: -74.006, accuracy: 10, at }, 1000),
    ]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({
      validationType: 'geolocation_policy',
      details: { check: 'implausible_movement' },
    });
    await store.close();
  });

  it('cleanup drops expired nonces and tombstones', async () => {
    const { store, clock } = await setup();
    const a = await store.issue(A);
    await store.issue(A);
    await store.consume(A, a.nonce);
    clock.advance(TTL * 1000 + 1);
    await store.cleanup();
    expect((await store.stats()).outstanding).toBe(0);
    expect(['unknown', 'expired', 'reused']).toContain(await store.consume(A, a.nonce));
    await store.close();
  });
});

describe('SQLite nonce store durability', () => {
  it('keeps issued and spent nonces across a restart', async () => {
    const path = join(dir, 'restart.db');
    const s1 = await SqliteNonceStore.open({ path });
    const n1 = await s1.issue(A);
    const n2 = await s1.issue(A);
    expect(await s1.consume(A, n1.nonce)).toBe('ok');
    await s1.close();
    const s2 = await SqliteNonceStore.open({ path });
    expect(await s2.consume(A, n1.nonce)).toBe('reused');
    expect(await s2.consume(A, n2.nonce)).toBe('ok');
    await s2.close();
  });
});

const consumer = fileURLToPath(new URL('./helpers/nonce-consumer.ts', import.meta.url));

function startConsumer(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', consumer, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err += d.toString();
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d.toString();
      if (out.startsWith('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`consumer exited early (${code}): ${err}`)));
  });
  const done = new Promise<Record<string, number>>((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`consumer failed (${code}): ${err}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!));
    });
  });
  return { child, ready, done };
}

describe.each(['sqlite', 'redis'])('%s nonce store across two processes', (kind) => {
  it('1000 consumes from two processes at once: exactly one ok', async () => {
    let store: NonceStore;
    let where: string;
    const prefix = `mp${++seq}:`;
    if (kind === 'sqlite') {
      where = join(dir, 'multi.db');
      store = await SqliteNonceStore.open({ path: where });
    } else {
      where = String(redis.port);
      store = new RedisNonceStore({ client, prefix });
    }
    const { nonce } = await store.issue(A);
    const procs = [0, 1].map(() => startConsumer([kind, where, A, nonce, '500', prefix]));
    await Promise.all(procs.map((p) => p.ready));
    for (const p of procs) p.child.stdin.write('go\n');
    const tallies = await Promise.all(procs.map((p) => p.done));
    const ok = tallies.reduce((a, t) => a + (t.ok ?? 0), 0);
    const reused = tallies.reduce((a, t) => a + (t.reused ?? 0), 0);
    expect(ok).toBe(1);
    expect(reused).toBe(999);
    expect(await store.consume(A, nonce)).toBe('reused');
    await store.close();
  });
});

describe.each(['sqlite', 'redis'])('%s position compare-and-set across two processes', (kind) => {
  it('400 compare-and-sets from the same last position in two processes: exactly one stores', async () => {
    const prefix = `pp${++seq}:`;
    const where = kind === 'sqlite' ? join(dir, `positions${seq}.db`) : String(redis.port);
    const store =
      kind === 'sqlite'
        ? await SqliteNonceStore.open({ path: where })
        : new RedisNonceStore({ client, prefix });
    // Keep in step with EXPECTED in helpers/nonce-consumer.ts.
    const expected = { lat: 1, lon: 2, accuracy: 3, at: Date.UTC(2026, 10, 28, 21, 0, 0) };
    expect(await store.replacePosition(A, undefined, expected, new Date(Date.now() + 60_000))).toBe(true);
    const procs = [0, 1].map(() => startConsumer([kind, where, A, '-', '200', prefix, 'position']));
    await Promise.all(procs.map((p) => p.ready));
    for (const p of procs) p.child.stdin.write('go\n');
    const tallies = await Promise.all(procs.map((p) => p.done));
    expect(tallies.reduce((a, t) => a + (t.won ?? 0), 0)).toBe(1);
    expect(tallies.reduce((a, t) => a + (t.lost ?? 0), 0)).toBe(399);
    const last = await store.lastPosition(A);
    expect(last).toMatchObject({ lat: 1, lon: 2, accuracy: 3 });
    expect(last!.at).toBeGreaterThan(expected.at);
    await store.close();
  });
});

describe('memory nonce store hash table (model-based)', () => {
  it('agrees with a simple model under random issue/consume/expire sequences', async () => {
    const { default: fc } = await import('fast-check');
    const keyids = Array.from({ length: 6 }, (_, i) => String(i).repeat(64));
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('issue' as const), k: fc.nat(5), auth: fc.boolean() }),
            fc.record({ op: fc.constant('consume' as const), k: fc.nat(5), pick: fc.nat() }),
            fc.record({ op: fc.constant('advance' as const), ms: fc.nat(120_000) }),
          ),
          { maxLength: 400 },
        ),
        (ops) => {
          const clock = new Clock();
          const store = new MemoryNonceStore({ ttlSeconds: 300, maxOutstanding: 3, now: clock.now });
          // model: nonce -> {keyid, pool, exp, spent, evicted}
          const model = new Map<
            string,
            { k: string; pool: string; exp: number; spent: boolean; gone: boolean }
          >();
          const all: string[] = [];
          for (const o of ops) {
            if (o.op === 'advance') clock.advance(o.ms);
            else if (o.op === 'issue') {
              const k = keyids[o.k]!;
              const pool = o.auth ? 'a' : '';
              const live = [...model.entries()].filter(
                ([, v]) => v.k === k && v.pool === pool && !v.spent && !v.gone && v.exp > clock.t,
              );
              if (live.length >= 3) live[0]![1].gone = true;
              const { nonce } = store.issueSync(k, { authenticated: o.auth });
              model.set(nonce, { k, pool, exp: clock.t + 300_000, spent: false, gone: false });
              all.push(nonce);
            } else if (all.length > 0) {
              const nonce = all[o.pick % all.length]!;
              const v = model.get(nonce)!;
              const k = keyids[o.k]!;
              const got = store.consumeSync(k, nonce);
              if (v.gone) expect(['unknown', 'wrong_agent', 'expired', 'reused']).toContain(got);
              // An expired nonce may already be swept: for any agent it is then simply unknown.
              else if (k !== v.k && v.exp <= clock.t)
                expect(['wrong_agent', 'expired', 'unknown']).toContain(got);
              else if (k !== v.k) expect(got).toBe('wrong_agent');
              else if (v.spent) expect(['reused', 'unknown']).toContain(got);
              else if (v.exp <= clock.t) {
                expect(['expired', 'unknown']).toContain(got);
                v.gone = true;
              } else {
                expect(got).toBe('ok');
                v.spent = true;
              }
            }
          }
        },
      ),
      {
        numRuns: 200,
        ...(process.env.NONCE_MODEL_SEED ? { seed: Number(process.env.NONCE_MODEL_SEED) } : {}),
      },
    );
  });
});
