#!/usr/bin/env node
/**
 * `createAgent().send(metrics)` against a collector or gateway: enrol once, send one message and one batch.
 * Plain ESM, no build step; shipped in the package (`node_modules/@geofence/agent/examples/quickstart.mjs`).
 *
 *   node quickstart.mjs --ca ca.pem [--gateway https://127.0.0.1:8444] [--tcti swtpm:host=127.0.0.1,port=2321]
 *                       [--name agent-001] [--state-dir DIR]
 *
 * `--ca` is the CA certificate (PEM) the collector's/gateway's TLS certificate chains to; `--tcti` defaults
 * to $TPM2TOOLS_TCTI.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createAgent, staticLocation } from '@geofence/agent';

const { values: opt } = parseArgs({
  options: {
    ca: { type: 'string' },
    gateway: { type: 'string', default: 'https://127.0.0.1:8444' },
    tcti: { type: 'string', default: process.env.TPM2TOOLS_TCTI ?? 'swtpm:host=127.0.0.1,port=2321' },
    name: { type: 'string', default: 'agent-001' },
    'state-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opt.help || !opt.ca) {
  console.error(
    'usage: node quickstart.mjs --ca <ca.pem> [--gateway <url>] [--tcti <tcti>] [--name <agent>] [--state-dir <dir>]',
  );
  process.exit(opt.help ? 0 : 2);
}

const agent = createAgent({
  name: opt.name,
  tpm: { tcti: opt.tcti },
  gateway: opt.gateway,
  tls: { ca: readFileSync(opt.ca, 'utf8') },
  location: staticLocation({ region: 'US', state: 'California', city: 'Santa Clara' }),
  ...(opt['state-dir'] ? { stateDir: opt['state-dir'] } : {}),
});

try {
  // Once per key: prove to the collector that the signing key lives in this host's TPM.
  if (!agent.status().enrolled) {
    const enrolment = await agent.enroll({ workload: { name: 'quickstart', version: '1.0.0' } });
    console.log(`enrolled ${enrolment.keyid} (${enrolment.status})`);
  }
  const { recordId } = await agent.send({ cpu: 0.42, mem: 0.61, host: 'edge-1' });
  console.log(`accepted: record ${recordId}`);
  const { recordId: batchId } = await agent.sendBatch([{ cpu: 0.4 }, { cpu: 0.5 }, { cpu: 0.45 }]);
  console.log(`accepted: batch record ${batchId}`);
} finally {
  await agent.close();
}
