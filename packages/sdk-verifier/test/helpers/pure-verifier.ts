/**
 * Child-process script: with better-sqlite3 blocked, the verifier must still load and verify with the
 * memory nonce store and the JSON registry; only opening a SQLite store fails, with a clear message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonFileRegistry, MemoryNonceStore, SqliteNonceStore, verifyMetrics } from '../../src/index.js';
import { buildMetricsRequest, makeAgent } from './signed-request.js';

const dir = mkdtempSync(join(tmpdir(), 'geofence-pure-'));
const out: Record<string, unknown> = {};
try {
  const registry = await JsonFileRegistry.open({ path: join(dir, 'agents.json'), watch: false });
  const agent = makeAgent('agent-001');
  await registry.put(agent.record);
  const nonces = new MemoryNonceStore();
  const { nonce } = await nonces.issue(agent.keyid);
  const r = await buildMetricsRequest(agent, { nonce });
  const verdict = await verifyMetrics(
    { method: r.method, url: r.path, headers: r.headers, rawBody: Buffer.from(r.body!) },
    { registry, nonces },
  );
  out.status = verdict.status;
  await registry.close();
  try {
    await SqliteNonceStore.open({ path: join(dir, 'n.db') });
    out.sqlite = 'opened';
  } catch (err) {
    out.sqlite = (err as Error).message;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
