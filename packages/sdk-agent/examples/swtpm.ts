/**
 * Starts a software TPM for trying the agent (development only): manufactures it with EK
 * certificates, writes `<dir>/tcti` and `<dir>/ek-ca.pem` (the CA that issued the EK certificates,
 * for the collector's EK_CA_BUNDLE) and keeps running until Ctrl-C.
 *
 *   node --import tsx packages/sdk-agent/examples/swtpm.ts /tmp/geofence-tpm
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSwtpm } from '@geofence/native-tpm';

const dir = process.argv[2] ?? '/tmp/geofence-tpm';
mkdirSync(dir, { recursive: true });
const tpm = await startSwtpm({ stateDir: join(dir, 'state') });
writeFileSync(join(dir, 'tcti'), tpm.tcti);
writeFileSync(join(dir, 'ek-ca.pem'), tpm.ekCaCertificates.join('\n'));
console.log(`swtpm running: TPM2TOOLS_TCTI="${tpm.tcti}"  EK CA bundle: ${join(dir, 'ek-ca.pem')}`);
const stop = () => void tpm.stop().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
