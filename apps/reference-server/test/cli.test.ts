/**
 * The `geofence` CLI as a user runs it: help, configuration errors, registry administration and
 * offline re-verification of a stored record.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type NonceResponse, SqliteRegistry } from '@geofence/verifier';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { buildSigned } from '../src/demo/raw.js';
import { SqliteRecordStore } from '../src/records.js';
import { testDataDir } from './helpers/env.js';
import { acceptedRecord } from './helpers/records.js';
import { register, SANTA_CLARA, softAgent } from './helpers/soft-agent.js';

// Real processes (swtpm, collectors, tsx start-up) on a shared 2-core machine: generous per-test bound.
vi.setConfig({ testTimeout: 150_000 });

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

async function geofence(args: string[], env: Record<string, string> = {}) {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

let dir: string;
const agent = softAgent('agent-007');

beforeAll(async () => {
  ({ dir } = await testDataDir('cli'));
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  await register(registry, agent, 'pending');
  await registry.close();
});

describe('geofence CLI', () => {
  it('documents every command', async () => {
    const [top, demo, agents] = await Promise.all([
      geofence(['--help']),
      geofence(['demo', '--help']),
      geofence(['agents', '--help']),
    ]);
    expect(top.code).toBe(0);
    for (const cmd of [
      'collector',
      'gateway',
      'agent',
      'enroll',
      'agents',
      'records',
      'verify-record',
      'doctor',
      'completion',
      'demo',
    ]) {
      expect(top.stdout).toContain(cmd);
    }
    expect(demo.stdout).toContain('gateway-policy-enforcement');
    for (const sub of ['list', 'show', 'add', 'approve', 'revoke']) expect(agents.stdout).toContain(sub);
  });

  it('refuses invalid configuration with exit code 2, naming each variable', async () => {
    const r = await geofence(['collector', '--data-dir', dir], { PORT: 'abc', NONCE_STORE: 'mongo' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('PORT');
    expect(r.stderr).toContain('NONCE_STORE');
  });

  it('refuses a config file typo and a missing certificate in one error, one line each', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ nonce: { stor: 'redis' }, tls: { minVerison: 'TLSv1.3' } }));
    const cert = join(dir, 'missing', 'cert.pem');
    const r = await geofence(['collector', '--config', bad, '--data-dir', dir], {
      SSL_CERT_PATH: cert,
      SSL_KEY_PATH: join(dir, 'tls', 'server-key.pem'),
    });
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe(`geofence: invalid configuration (config file ${bad}):`);
    expect(lines.slice(1).sort()).toEqual(
      [
        '  - nonce.stor: unknown setting — did you mean nonce.store?',
        '  - tls.minVerison: unknown setting — did you mean tls.minVersion?',
        `  - SSL_CERT_PATH: cannot read ${cert} (ENOENT)`,
      ].sort(),
    );
  });

  it('pre-registers, lists, approves and revokes agents', async () => {
    const add = await geofence([
      'agents',
      'add',
      'agent-new',
      '--region',
      'US',
      '--state',
      'California',
      '--city',
      'Santa Clara',
      '-d',
      dir,
    ]);
    expect(add.code, add.stderr).toBe(0);
    const list = await geofence(['agents', 'list', '-d', dir]);
    expect(list.stdout).toMatch(/agent-new\s+pre-registered/);
    expect(list.stdout).toMatch(/agent-007\s+pending/);
    const approve = await geofence(['agents', 'approve', 'agent-007', '-d', dir]);
    expect(approve.stdout).toContain('pending → active');
    const show = await geofence(['agents', 'show', 'agent-007', '-o', 'json', '-d', dir]);
    expect(JSON.parse(show.stdout)).toMatchObject({
      agent_name: 'agent-007',
      status: 'active',
      keyid: agent.keyid,
    });
    const [revoke, unknown, revokeUnknown, cityWithoutState] = await Promise.all([
      geofence(['agents', 'revoke', 'agent-007', '-d', dir]),
      geofence(['agents', 'approve', 'nobody', '-d', dir]),
      geofence(['agents', 'revoke', 'nobody', '-d', dir]),
      geofence(['agents', 'add', 'x', '--region', 'US', '--city', 'Austin', '-d', dir]),
    ]);
    expect(revoke.stdout).toContain('active → revoked');
    expect(unknown.code).toBe(1);
    expect(revokeUnknown.code).toBe(1);
    expect(revokeUnknown.stderr).toContain('nothing to revoke');
    expect(revokeUnknown.stderr).not.toContain('approved');
    expect(cityWithoutState.code).toBe(2);
  });

  it('prints agents as JSON for scripts with -o json, as tables by default', async () => {
    const add = await geofence(['agents', 'add', 'agent-json', '--region', 'US', '-d', dir]);
    expect(add.code, add.stderr).toBe(0);
    const [list, table, show, showTable, unknown, badFormat] = await Promise.all([
      geofence(['agents', 'list', '-o', 'json', '-d', dir]),
      geofence(['agents', 'list', '-d', dir]),
      geofence(['agents', 'show', 'agent-007', '--output', 'json', '-d', dir]),
      geofence(['agents', 'show', 'agent-007', '-d', dir]),
      geofence(['agents', 'show', 'nobody', '-o', 'json', '-d', dir]),
      geofence(['agents', 'list', '-o', 'yaml', '-d', dir]),
    ]);
    expect(list.code, list.stderr).toBe(0);
    const agents = JSON.parse(list.stdout) as Array<{ agent_name: string; status: string; keyid?: string }>;
    expect(Array.isArray(agents)).toBe(true);
    expect(agents.find((a) => a.agent_name === 'agent-007')).toMatchObject({ keyid: agent.keyid });
    expect(agents.find((a) => a.agent_name === 'agent-json')).toMatchObject({ status: 'pre-registered' });
    // An entry of the list is what `agents show -o json` prints for that agent.
    expect(agents.find((a) => a.agent_name === 'agent-007')).toEqual(JSON.parse(show.stdout));
    expect(table.stdout.split('\n')[0]).toMatch(/^agent_name\s+status\s+keyid/);
    expect(table.stdout).toMatch(/agent-json\s+pre-registered/);
    expect(showTable.code).toBe(0);
    expect(showTable.stdout).toMatch(/^agent_name\s+agent-007$/m);
    expect(showTable.stdout).toMatch(new RegExp(`^keyid\\s+${agent.keyid}$`, 'm'));
    // Errors: one line on stderr, nothing on stdout (a script parsing stdout sees no half output).
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toBe('geofence: agent nobody not found\n');
    // A usage error exits 2; its first line names the problem.
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr.split('\n')[0]).toContain("argument 'yaml' is invalid");
  });

  it('reports an unreachable Redis as one line naming REDIS_URL, without its password (exit 1)', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const r = await geofence(['collector', '-d', dir], {
      NONCE_STORE: 'redis',
      REDIS_URL: `redis://:s3cret-pass@127.0.0.1:${port}`,
      PORT: '0',
      LOG_LEVEL: 'info',
    });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual([
      `geofence: cannot connect to Redis at redis://:***@127.0.0.1:${port} (REDIS_URL): connect ECONNREFUSED 127.0.0.1:${port}`,
    ]);
    expect(r.stdout + r.stderr).not.toContain('s3cret-pass');
    expect(r.stdout).not.toMatch(/Redis connection error|Unhandled error event/);
  });

  it('reports an unreachable PostgreSQL as one line naming DATABASE_URL, without its password (exit 1)', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const r = await geofence(['collector', '-d', dir], {
      REGISTRY_TYPE: 'postgres',
      RECORDS_STORE: 'postgres',
      DATABASE_URL: `postgres://geofence:s3cret-pass@127.0.0.1:${port}/geofence`,
      PORT: '0',
      LOG_LEVEL: 'info',
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `geofence: cannot connect to PostgreSQL at postgres://geofence:***@127.0.0.1:${port}/geofence (DATABASE_URL): connect ECONNREFUSED 127.0.0.1:${port}`,
    ]);
    expect(r.stdout + r.stderr).not.toContain('s3cret-pass');
  });

  it('re-verifies a stored record offline (exit 0 valid, 1 invalid, 2 unknown)', async () => {
    const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
    await registry.setStatus('agent-007', 'active');
    await registry.close();
    const nonce: NonceResponse = {
      nonce: 'A'.repeat(43),
      expires_at: new Date(Date.now() + 60_000).toISOString(),
      expires_in: 60,
    };
    const req = await buildSigned({
      agentName: agent.name,
      keyid: agent.keyid,
      signer: agent.signer,
      nonce,
      metrics: { cpu_percent: 1 },
      place: SANTA_CLARA,
      now: new Date(),
      validitySeconds: 60,
    });
    const store = new SqliteRecordStore(join(dir, 'records.db'));
    const good = await store.insert(
      acceptedRecord(req.body, { agentName: agent.name, keyid: agent.keyid, headers: req.headers }),
    );
    const forged = await store.insert(
      acceptedRecord(Buffer.from(req.body.toString().replace('"cpu_percent":1', '"cpu_percent":9')), {
        agentName: agent.name,
        keyid: agent.keyid,
      }),
    );
    await store.close();
    const [ok, bad, missing] = await Promise.all([
      geofence(['verify-record', good, '-d', dir, '-o', 'json']),
      geofence(['verify-record', forged, '-d', dir, '-o', 'json']),
      geofence(['verify-record', 'rec_nope', '-d', dir]),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, record_id: good });
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).checks).toContainEqual({
      check: 'payload_signature',
      ok: false,
      detail: 'Signature verification failed',
    });
    expect(missing.code).toBe(2);
  });
});
