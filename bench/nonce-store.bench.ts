/**
 * @geofence/verifier nonce stores (SPEC §13):
 *   - memory store holding 1 000 000 outstanding nonces (62 500 agents × 16), in a lean child process:
 *     process RSS (target ≤ 256 MB)
 *     and heap bytes per nonce; issue and consume throughput;
 *   - Redis store on loopback (own redis-server): consumes/s with 256 in flight (target ≥ 10 000).
 *
 * Run: npm run build -w packages/http-sig -w packages/tpm-wire -w packages/sdk-verifier &&
 *      node --import tsx bench/nonce-store.bench.ts [--json[=DIR]]
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisNonceStore } from '@geofence/verifier';
import { Redis } from 'ioredis';
import { startRedis } from '../packages/sdk-verifier/test/helpers/redis.js';

const mb = (n: number) => n / (1024 * 1024);
const results: Record<string, { value: number; unit: string }> = {};
const report = (name: string, value: number, unit: string, digits = 0) => {
  results[name] = { value, unit };
  console.log(`${name}: ${value.toFixed(digits)} ${unit}`);
};

// ---- memory store: 1 M outstanding -------------------------------------------------------------
// Measured in a separate plain-node process (bench/lib/nonce-memory-child.mjs): the RSS of this
// process is dominated by tsx, ioredis and the harness, which a collector does not carry.
const child = spawnSync(
  process.execPath,
  ['--expose-gc', fileURLToPath(new URL('./lib/nonce-memory-child.mjs', import.meta.url))],
  { encoding: 'utf8', maxBuffer: 1 << 20 },
);
if (child.status !== 0) throw new Error(`memory child failed: ${child.stderr}`);
const mem = JSON.parse(child.stdout) as {
  outstanding: number;
  sampleOk: boolean;
  rssBefore: number;
  rssAfter: number;
  storeBytes: number;
  issuePerSec: number;
  consumePerSec: number;
};
if (mem.outstanding !== 1_000_000) throw new Error(`expected 1M outstanding, got ${mem.outstanding}`);
if (!mem.sampleOk) throw new Error('sampled nonces must consume ok');
report('nonce.memory.outstanding', mem.outstanding, 'nonces');
report('nonce.memory.rss_before_store', mb(mem.rssBefore), 'MB', 1);
report('nonce.memory.rss_with_1M_outstanding', mb(mem.rssAfter), 'MB', 1);
report('nonce.memory.rss_target', 256, 'MB');
report('nonce.memory.heap_plus_buffers_per_nonce', mem.storeBytes / mem.outstanding, 'bytes', 1);
report('nonce.memory.issue', mem.issuePerSec, 'ops/s');
report('nonce.memory.consume', mem.consumePerSec, 'ops/s');
console.log(`nonce.memory.rss_target_met: ${mb(mem.rssAfter) <= 256 ? 'yes' : 'NO'}`);

// ---- Redis store: consumes/s -------------------------------------------------------------------
const redis = await startRedis();
const client = new Redis({ port: redis.port, host: '127.0.0.1', enableAutoPipelining: true });
const rstore = new RedisNonceStore({ client, maxOutstanding: 1_000_000 });
const N = 60_000;
const INFLIGHT = 256;
const issued: string[] = new Array(N);
const keyid = createHash('sha256').update('0').digest('hex');
let next = 0;
const issueWorker = async () => {
  for (let i = next++; i < N; i = next++) issued[i] = (await rstore.issue(keyid)).nonce;
};
let t = process.hrtime.bigint();
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
