// Memory half of bench/nonce-store.bench.ts, run in its own plain `node --expose-gc` process so
// the RSS figure is what a collector process pays for the store, not what tsx, ioredis and the
// benchmark harness of the parent already occupy. Prints one JSON object on stdout.
import { createHash } from 'node:crypto';
import { MemoryNonceStore } from '@geofence/verifier';

const AGENTS = 62_500;
const PER_AGENT = 16;
const keyids = Array.from({ length: AGENTS }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));
globalThis.gc();
const before = process.memoryUsage();
const store = new MemoryNonceStore({ maxOutstanding: PER_AGENT });
const sample = [];
let t = process.hrtime.bigint();
for (let r = 0; r < PER_AGENT; r++) {
  for (let a = 0; a < AGENTS; a++) {
    const n = store.issueSync(keyids[a]);
    if ((a & 1023) === 0) sample.push([keyids[a], n.nonce]);
  }
}
const issueSecs = Number(process.hrtime.bigint() - t) / 1e9;
globalThis.gc();
const after = process.memoryUsage();
const stats = await store.stats();
t = process.hrtime.bigint();
let ok = 0;
for (const [k, n] of sample) if (store.consumeSync(k, n) === 'ok') ok++;
const consumeSecs = Number(process.hrtime.bigint() - t) / 1e9;
await store.close();
process.stdout.write(
  JSON.stringify({
    outstanding: stats.outstanding,
    sampleOk: ok === sample.length,
    rssBefore: before.rss,
    rssAfter: after.rss,
    storeBytes: after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers,
    issuePerSec: (AGENTS * PER_AGENT) / issueSecs,
    consumePerSec: sample.length / consumeSecs,
  }),
);
