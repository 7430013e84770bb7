/**
 * `geofence swtpm` (development only): a software TPM manufactured with an EK certificate, its state
 * kept in `<dataDir>/swtpm` (so the EK and the agent's keys survive restarts), and the EK CA chain
 * written to `<dataDir>/swtpm-ek-ca.pem` for the collector's `EK_CA_BUNDLE`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { startSwtpm } from '@geofence/native-tpm';

/** Starts swtpm and prints how to use it; resolves with a handle whose `close` stops it. */
export async function runSwtpm(dataDir: string, out: Writable): Promise<{ close(): Promise<void> }> {
  const sw = await startSwtpm({ stateDir: join(dataDir, 'swtpm'), ekCert: true });
  const caPath = join(dataDir, 'swtpm-ek-ca.pem');
  writeFileSync(caPath, sw.ekCaCertificates.join('\n'));
  out.write(
    `swtpm running (pid ${sw.pid}), state in ${sw.stateDir}\n` +
      `  agent:     TPM2TOOLS_TCTI="${sw.tcti}"\n` +
      `  collector: EK_CA_BUNDLE=${caPath}\n` +
      'Ctrl-C stops it.\n',
  );
  return { close: () => sw.stop() };
}
