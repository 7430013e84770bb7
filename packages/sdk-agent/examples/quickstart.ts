/**
 * `createAgent().send(metrics)` against the reference collector (see the package README).
 *
 *   TPM2TOOLS_TCTI="$(cat /tmp/geofence-tpm/tcti)" node --import tsx packages/sdk-agent/examples/quickstart.ts
 */
import { readFileSync } from 'node:fs';
import { createAgent, staticLocation } from '@geofence/agent';

const agent = createAgent({
  name: 'agent-001',
  tpm: { tcti: process.env.TPM2TOOLS_TCTI ?? 'swtpm:host=127.0.0.1,port=2321' },
  gateway: process.env.GATEWAY_URL ?? 'https://127.0.0.1:8444',
  tls: { ca: readFileSync(process.env.GEOFENCE_CA ?? '.geofence-data/tls/ca.pem', 'utf8') },
  location: staticLocation({ region: 'US', state: 'California', city: 'Santa Clara' }),
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
