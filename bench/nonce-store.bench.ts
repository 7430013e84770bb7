/**
 * @geofence/verifier nonce stores (SPEC §13):
 *   - memory store holding 1 000 000 outstanding nonces (62 500 agents × 16): process RSS (target ≤ 256 MB)
 *     and heap bytes per nonce; issue and consume throughput;
 *   - Redis store on loopback (own redis-server): consumes/s with 256 in flight (target ≥ 10 000).
 *
 * Run: npm run build -w packages/http-sig -w packages/tpm-wire -w packages/sdk-verifier &&
 *      node --import tsx bench/nonce-store.bench.ts [--json[=DIR]]
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MemoryNonceStore, RedisNonceStore } from '@geofence/verifier';
import { Redis } from 'ioredis';
import { startRedis } from '../packages/sdk-verifier/test/helpers/redis.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const mb = (n: number) => n / (1024 * 1024);
const results: Record<string, { value: number; unit: string }> = {};
const report = (name: string, value: number, unit: string, digits = 0) => {
  results[name] = { value, unit };
  console.log(`${name}: ${value.toFixed(digits)} ${unit}`);
};

// ---- memory store: 1 M outstanding -------------------------------------------------------------
const AGENTS = 62_500;
const PER_AGENT = 16;
const keyids = Array.from({ length: AGENTS }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));
gc();
const before = process.memoryUsage();
const store = new MemoryNonceStore({ maxOutstanding: PER_AGENT });
const sample: Array<[string, string]> = [];
let t = process.hrtime.bigint();
for (let r = 0; r < PER_AGENT; r++) {
  for (let a = 0; a < AGENTS; a++) {
    const n = store.issueSync(keyids[a]!);
    if ((a & 1023) === 0) sample.push([keyids[a]!, n.nonce]);
  }
}
const issueSecs = Number(process.hrtime.bigint() - t) / 1e9;
gc();
const after = process.memoryUsage();
const stats = await store.stats();
if (stats.outstanding !== AGENTS * PER_AGENT)
  throw new Error(`expected 1M outstanding, got ${stats.outstanding}`);
report('nonce.memory.outstanding', stats.outstanding, 'nonces');
report('nonce.memory.rss_before_store', mb(before.rss), 'MB', 1);
report('nonce.memory.rss_with_1M_outstanding', mb(after.rss), 'MB', 1);
report('nonce.memory.rss_target', 256, 'MB');
report(
  'nonce.memory.heap_plus_buffers_per_nonce',
  (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / stats.outstanding,
  'bytes',
  1,
);
report('nonce.memory.issue', (AGENTS * PER_AGENT) / issueSecs, 'ops/s');
t = process.hrtime.bigint();
let ok = 0;
for (const [k, n] of sample) if (store.consumeSync(k, n) === 'ok') ok++;
const consumeSecs = Number(process.hrtime.bigint() - t) / 1e9;
if (ok !== sample.length) throw new Error('sampled nonces must consume ok');
report('nonce.memory.consume', sample.length / consumeSecs, 'ops/s');
console.log(`nonce.memory.rss_target_met: ${mb(after.rss) <= 256 ? 'yes' : 'NO'}`);
await store.close();

// ---- Redis store: consumes/s -------------------------------------------------------------------
const redis = await startRedis();
const client = new Redis({ port: redis.port, host: '127.0.0.1', enableAutoPipelining: true });
const rstore = new RedisNonceStore({ client, maxOutstanding: 1_000_000 });
const N = 60_000;
const INFLIGHT = 256;
const issued: string[] = new Array(N);
const keyid = keyids[0]!;
let next = 0;
const issueWorker = async () => {
  for (let i = next++; i < N; i = next++) issued[i] = (await rstore.issue(keyid)).nonce;
};
t = process.hrtime.bigint();
await Promise.all(Array.from({ length: INFLIGHT }, issueWorker));
report('nonce.redis.issue', N / (Number(process.hrtime.bigint() - t) / 1e9), 'ops/s');
next = 0;
let rok = 0;
const consumeWorker = async () => {
  for (let i = next++; i < N; i = next++) if ((await rstore.consume(keyid, issued[i]!)) === 'ok') rok++;
};
t = process.hrtime.bigint();
await Promise.all(Array.from({ length: INFLIGHT }, consumeWorker));
const rate = N / (Number(process.hrtime.bigint() - t) / 1e9);
if (rok !== N) throw new Error(`expected ${N} ok consumes, got ${rok}`);
report('nonce.redis.consume', rate, 'ops/s');
report('nonce.redis.consume_target', 10_000, 'ops/s');
console.log(`nonce.redis.consume_target_met: ${rate >= 10_000 ? 'yes' : 'NO'}`);
await client.quit();
await redis.stop();

const jsonArg = process.argv.find((a) => a === '--json' || a.startsWith('--json='));
if (jsonArg !== undefined) {
  const out = jsonArg.includes('=') ? jsonArg.slice('--json='.length) : 'bench-results';
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'nonce-store.json'),
    `${JSON.stringify({ bench: 'nonce-store', node: process.version, results }, null, 2)}\n`,
  );
}
