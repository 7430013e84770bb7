/**
 * Movement plausibility (issue 16 item 4): what the check adds to an accepted location.
 *   - assessMovement (the math alone): ns per call;
 *   - checkMovement against the memory store and against Redis on loopback (own redis-server):
 *     one read and one compare-and-set script per accepted location, checks/s with 256 in flight
 *     over 4096 agents (each agent's next fix 1 s and a few metres later, so every check stores).
 *
 * Run: npm run build -w packages/protocol -w packages/sdk-verifier &&
 *      node --import tsx bench/plausibility.bench.ts [--json[=DIR]]
 */

import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  assessMovement,
  checkMovement,
  MemoryNonceStore,
  type NonceStore,
  RedisNonceStore,
} from '@geofence/verifier';
import { Redis } from 'ioredis';
import { startRedis } from '../packages/sdk-verifier/test/helpers/redis.js';

const results: Record<string, { value: number; unit: string }> = {};
const report = (name: string, value: number, unit: string, digits = 0) => {
  results[name] = { value, unit };
  console.log(`${name}: ${value.toFixed(digits)} ${unit}`);
};

// ---- the math ----------------------------------------------------------------------------------
{
  const N = 2_000_000;
  const a = { lat: 37.354, lon: -121.955, accuracy: 10, at: 0 };
  let plausible = 0;
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    if (assessMovement(a, { lat: 37.354 + i * 1e-9, lon: -121.955, accuracy: 10, at: 1000 }, 1000).plausible)
      plausible++;
  }
  const ns = Number(process.hrtime.bigint() - t) / N;
  if (plausible !== N) throw new Error('every bench movement must be plausible');
  report('plausibility.assess', ns, 'ns/op', 1);
}

// ---- checkMovement on a store ------------------------------------------------------------------
const AGENTS = 4096;
const ROUNDS = 8;
const INFLIGHT = 256;
const keyids = Array.from({ length: AGENTS }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));

async function checksPerSecond(store: NonceStore): Promise<number> {
  const t0 = Date.now();
  const jobs: Array<[string, number]> = [];
  // Round-major: one fix per agent per round, so no two jobs of one agent race each other.
  for (let r = 0; r < ROUNDS; r++) for (const k of keyids) jobs.push([k, r]);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < jobs.length; i = next++) {
      const [k, r] = jobs[i]!;
      await checkMovement(
        store,
        k,
        'bench',
        { lat: 37.354 + r * 1e-5, lon: -121.955, accuracy: 10, at: t0 + r * 1000 },
        1000,
      );
    }
  };
  const t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  return jobs.length / (Number(process.hrtime.bigint() - t) / 1e9);
}

report('plausibility.check.memory', await checksPerSecond(new MemoryNonceStore()), 'checks/s');

const redis = await startRedis();
const client = new Redis({ port: redis.port, host: '127.0.0.1', enableAutoPipelining: true });
report('plausibility.check.redis', await checksPerSecond(new RedisNonceStore({ client })), 'checks/s');
await client.quit();
await redis.stop();

const jsonArg = process.argv.find((a) => a === '--json' || a.startsWith('--json='));
if (jsonArg !== undefined) {
  const out = jsonArg.includes('=') ? jsonArg.slice('--json='.length) : 'bench-results';
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'plausibility.json'),
    `${JSON.stringify({ bench: 'plausibility', node: process.version, results }, null, 2)}\n`,
  );
}
