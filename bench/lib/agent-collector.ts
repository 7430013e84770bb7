/**
 * The collector of `bench/agent.bench.ts`, run as a child process (`fork`, IPC): Express +
 * `@geofence/verifier` middleware over HTTPS on loopback, a JSON-file registry and a memory nonce
 * store. In its own process its verification CPU is not spent on the agent's event loop, so the
 * agent's accounting (TPM time, network wait, the rest) measures the agent alone — as on a real
 * edge host, where the collector runs elsewhere.
 *
 * Protocol: the parent sends `{ tls: { key, cert } }`; the child answers `{ url }` once it listens.
 * Then `{ put: AgentRecord }` is answered `{ put: true }`, `{ cpu: true }` with `{ cpu: ms }` (this
 * process's user + system CPU so far), and `{ stop: true }` closes everything and exits.
 */
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { geofence, JsonFileRegistry, MemoryNonceStore } from '@geofence/verifier';
import express from 'express';

const send = (m: unknown) => process.send?.(m);

process.once('message', async (m: { tls: { key: string; cert: string } }) => {
  const registry = await JsonFileRegistry.open({
    path: join(mkdtempSync(join(tmpdir(), 'agent-bench-reg-')), 'agents.json'),
    watch: false,
  });
  const nonces = new MemoryNonceStore({ maxOutstanding: 64 });
  const app = express();
  app.get('/nonce', geofence.express.nonce({ registry, nonces }));
  app.post('/metrics', geofence.express.collector({ registry, nonces, onAccept: () => 'r' }));
  const server = createServer({ key: m.tls.key, cert: m.tls.cert }, app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.on('message', async (c: { put?: Parameters<typeof registry.put>[0]; cpu?: true; stop?: true }) => {
    if (c.put) {
      await registry.put(c.put);
      send({ put: true });
    } else if (c.cpu) {
      const u = process.cpuUsage();
      send({ cpu: (u.user + u.system) / 1000 });
    } else if (c.stop) {
      server.closeAllConnections();
      server.close();
      await nonces.close();
      await registry.close();
      process.disconnect();
    }
  });
  send({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` });
});
