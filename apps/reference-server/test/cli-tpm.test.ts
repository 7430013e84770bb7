/**
 * The CLI commands that use the TPM, against real parts: swtpm with an EK certificate (through our
 * addon), an HTTPS collector, redis-server and gpsd fed by gpsfake.
 *
 * - `geofence doctor`: all checks passing, then the same checks against a dead TPM port, another
 *   CA, a closed Redis port and a closed gpsd port — each failing, with exit 1.
 * - `geofence enroll -o json|table`.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type SwtpmInstance, startSwtpm } from '@geofence/native-tpm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Gpsfake, startGpsfake } from '../../../packages/sdk-agent/test/helpers/gpsfake.js';
import type { DoctorCheck } from '../src/doctor.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { freePort, startRedis, type TestRedis } from './helpers/procs.js';

vi.setConfig({ testTimeout: 90_000 });

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

async function geofence(args: string[], env: Record<string, string>) {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

let swtpm: SwtpmInstance;
let col: RunningCollector;
let redis: TestRedis;
let gps: Gpsfake;
let dir: string;
let ekCa: string;

beforeAll(async () => {
  ({ dir } = await testDataDir('doctor'));
  [swtpm, redis, gps] = await Promise.all([
    startSwtpm({ stateDir: join(dir, 'swtpm'), ekCert: true }),
    startRedis(),
    startGpsfake([{ name: 'santa-clara', file: 'santa-clara.nmea' }]),
  ]);
  ekCa = join(dir, 'ek-ca.pem');
  writeFileSync(ekCa, swtpm.ekCaCertificates.join('\n'));
  col = await startCollector(testConfig('collector', dir), {
    log: silentLog,
    ekCaCertificates: swtpm.ekCaCertificates,
  });
}, 90_000);

afterAll(async () => {
  await col?.close();
  await Promise.all([swtpm?.stop(), redis?.stop(), gps?.stop()]);
});

const byCheck = (checks: DoctorCheck[]) => Object.fromEntries(checks.map((c) => [c.check, c]));

describe('geofence doctor', () => {
  it('passes every configured check against a running setup (-o json)', async () => {
    const r = await geofence(['doctor', '-d', dir, '--tcti', swtpm.tcti, '-u', col.url, '-o', 'json'], {
      EK_CA_BUNDLE: ekCa,
      NONCE_STORE: 'redis',
      REDIS_URL: redis.url,
      GPSD_HOST: '127.0.0.1',
      GPSD_PORT: String(gps.port),
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: DoctorCheck[] };
    expect(report.ok).toBe(true);
    const c = byCheck(report.checks);
    expect(c.tpm?.status).toBe('pass');
    expect(c.ek_certificate).toMatchObject({ status: 'pass' });
    expect(c.ek_certificate?.detail).toMatch(/^issued by /);
    expect(c.tls_trust).toMatchObject({ status: 'pass', detail: `${col.url}: certificate verified` });
    expect(c.clock_skew?.status).toBe('pass');
    expect(c.gpsd_fix?.status).toBe('pass');
    expect(c.gpsd_fix?.detail).toMatch(/37\.\d+, -121\.\d+/);
    expect(c.redis).toMatchObject({ status: 'pass' });
    expect(c.postgres?.status).toBe('skip');
  });

  it('fails each broken dependency with a one-line reason, as a table, exit 1', async () => {
    const { dir: other } = await testDataDir('doctor-other-ca');
    const [tpmPort, redisPort, gpsdPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const env = {
      NONCE_STORE: 'redis',
      REDIS_URL: `redis://:secret@127.0.0.1:${redisPort}`,
      GPSD_HOST: '127.0.0.1',
      GPSD_PORT: String(gpsdPort),
    };
    const args = ['doctor', '-d', other, '--tcti', `swtpm:host=127.0.0.1,port=${tpmPort}`, '-u', col.url];
    const [table, json] = await Promise.all([
      geofence([...args, '--timeout', '2000'], env),
      geofence([...args, '--timeout', '2000', '-o', 'json'], env),
    ]);
    expect(table.code).toBe(1);
    expect(json.code).toBe(1);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^check\s+status\s+detail$/);
    expect(lines.length).toBe(8);
    const c = byCheck((JSON.parse(json.stdout) as { checks: DoctorCheck[] }).checks);
    expect(c.tpm?.status).toBe('fail');
    expect(c.ek_certificate?.status).toBe('skip');
    // The collector's certificate is not issued by the other data directory's CA.
    expect(c.tls_trust?.status).toBe('fail');
    expect(c.clock_skew?.status).toBe('skip');
    expect(c.gpsd_fix?.status).toBe('fail');
    expect(c.redis?.status).toBe('fail');
    expect(json.stdout).not.toContain('secret');
    for (const check of Object.values(c)) expect(check.detail).not.toContain('\n');
    for (const name of ['tpm', 'tls_trust', 'gpsd_fix', 'redis'])
      expect(lines.find((l) => l.startsWith(name))).toMatch(/\sFAIL\s/);
  });
});

describe('geofence enroll', () => {
  it('prints the enrolment as JSON with -o json and as fields by default', async () => {
    // The agent's state in the test's data directory, not ~/.geofence.
    const env = { GATEWAY_URL: col.url, AGENT_STATE_DIR: join(dir, 'agent-state') };
    const json = await geofence(
      ['enroll', '-d', dir, '--name', 'agent-cli-enroll', '--tcti', swtpm.tcti, '-o', 'json'],
      env,
    );
    expect(json.code, json.stderr).toBe(0);
    const r = JSON.parse(json.stdout) as Record<string, unknown>;
    // Not pre-registered: the collector files it as pending for an operator.
    expect(r).toMatchObject({ agent_name: 'agent-cli-enroll', status: 'pending' });
    expect(r.keyid).toMatch(/^[0-9a-f]{64}$/);
    expect(r.next).toBe('an operator must run: geofence agents approve agent-cli-enroll');
    const table = await geofence(
      ['enroll', '-d', dir, '--name', 'agent-cli-enroll', '--tcti', swtpm.tcti],
      env,
    );
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^agent_name\s+agent-cli-enroll$/m);
    expect(table.stdout).toMatch(new RegExp(`^keyid\\s+${r.keyid}$`, 'm'));
  });
});
