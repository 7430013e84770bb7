/**
 * Child process for the outbox test: runs an agent from the package sources
 * (`node --import tsx outbox-child.ts <json config>`).
 *   mode "enqueue": queue `count` metric sets durably, print IDENTITY and QUEUED lines, then idle
 *                   (the parent kills it with SIGKILL while the gateway is still down);
 *   mode "drain":   start, let the outbox deliver everything, print DRAINED and exit.
 */
import { createAgent, staticLocation } from '@geofence/agent';

interface Config {
  mode: 'enqueue' | 'drain';
  name: string;
  tcti: string;
  gateway: string;
  ca: string;
  stateDir: string;
  count?: number;
  marker?: string;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
const agent = createAgent({
  name: cfg.name,
  tpm: { tcti: cfg.tcti },
  gateway: cfg.gateway,
  tls: { ca: cfg.ca },
  location: staticLocation({ region: 'US', state: 'California', city: 'Santa Clara' }),
  stateDir: cfg.stateDir,
  retry: { attempts: 2, baseDelayMs: 50, maxDelayMs: 200 },
  logger: { debug() {}, info() {}, warn() {}, error() {} },
});

const id = await agent.ready();
process.stdout.write(`IDENTITY ${JSON.stringify({ keyid: id.keyid, pem: id.publicKeyPem })}\n`);
if (cfg.mode === 'enqueue') {
  for (let seq = 0; seq < (cfg.count ?? 0); seq++)
    agent.enqueue({ seq, ...(cfg.marker ? { marker: cfg.marker } : {}) });
  process.stdout.write(`QUEUED ${agent.status().outbox.pending}\n`);
  setInterval(() => {}, 1000);
} else {
  await agent.flush();
  process.stdout.write(`DRAINED ${JSON.stringify(agent.status())}\n`);
  await agent.close();
  process.exit(0);
}
