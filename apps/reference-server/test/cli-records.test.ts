/**
 * `geofence records list|show` and `verify-record` output formats: JSON only on stdout with
 * `-o json` (parseable by a script), tables by default, one-line errors and the documented exit codes.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { StoredRecord } from '@geofence/verifier';
import { type NonceResponse, SqliteRegistry } from '@geofence/verifier';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { buildSigned } from '../src/demo/raw.js';
import { SqliteRecordStore } from '../src/records.js';
import { testDataDir } from './helpers/env.js';
import { acceptedRecord } from './helpers/records.js';
import { register, SANTA_CLARA, softAgent } from './helpers/soft-agent.js';

vi.setConfig({ testTimeout: 60_000 });

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

async function geofence(args: string[]) {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', CLI, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

let dir: string;
const stored: StoredRecord[] = [];
const a = softAgent('agent-rec-1');
const b = softAgent('agent-rec-2');

beforeAll(async () => {
  ({ dir } = await testDataDir('cli-records'));
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  await register(registry, a);
  await register(registry, b);
  await registry.close();
  const store = new SqliteRecordStore(join(dir, 'records.db'));
  for (const agent of [a, b, a]) {
    const nonce: NonceResponse = {
      nonce: Buffer.alloc(32, stored.length + 1).toString('base64url'),
      expires_at: new Date(Date.now() + 60_000).toISOString(),
      expires_in: 60,
    };
    const req = await buildSigned({
      agentName: agent.name,
      keyid: agent.keyid,
      signer: agent.signer,
      nonce,
      metrics: { cpu_percent: stored.length },
      place: SANTA_CLARA,
      now: new Date(),
      validitySeconds: 60,
    });
    const rec = acceptedRecord(req.body, { agentName: agent.name, keyid: agent.keyid, headers: req.headers });
    const id = await store.insert(rec);
    const got = await store.get(id);
    if (!got) throw new Error('record not stored');
    stored.push(got);
  }
  await store.close();
});

describe('geofence records', () => {
  it('lists records as JSON (the shape of GET /metrics/records) and pages with --after', async () => {
    const all = await geofence(['records', 'list', '-d', dir, '-o', 'json']);
    expect(all.code, all.stderr).toBe(0);
    const page = JSON.parse(all.stdout) as { records: Array<Record<string, unknown>>; next: string | null };
    expect(page.records.map((r) => r.record_id)).toEqual(stored.map((r) => r.id));
    expect(page.next).toBeNull();
    expect(page.records[0]).toMatchObject({
      agent_name: 'agent-rec-1',
      payload: { metrics: { cpu_percent: 0 }, geographic_region: SANTA_CLARA },
    });
    expect(
      Buffer.from(String(page.records[0]?.body_base64), 'base64').equals(Buffer.from(stored[0]!.rawBody)),
    ).toBe(true);

    const first = JSON.parse(
      (await geofence(['records', 'list', '-d', dir, '-o', 'json', '-l', '1'])).stdout,
    );
    expect(first.records).toHaveLength(1);
    expect(first.next).toMatch(/^\d+$/);
    const second = JSON.parse(
      (await geofence(['records', 'list', '-d', dir, '-o', 'json', '-l', '1', '--after', first.next])).stdout,
    );
    expect(second.records[0].record_id).toBe(stored[1]?.id);

    const mine = JSON.parse(
      (await geofence(['records', 'list', '-d', dir, '-o', 'json', '--agent', 'agent-rec-2'])).stdout,
    );
    expect(mine.records.map((r: { record_id: string }) => r.record_id)).toEqual([stored[1]?.id]);
  });

  it('prints tables by default, and the next-page cursor on stderr', async () => {
    const t = await geofence(['records', 'list', '-d', dir, '-l', '2']);
    expect(t.code).toBe(0);
    const lines = t.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^record_id\s+agent_name\s+received_at\s+place$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain('US/California/Santa Clara');
    expect(t.stderr).toMatch(/^geofence: more records: --after \d+\n$/);
    const show = await geofence(['records', 'show', String(stored[2]?.id), '-d', dir]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^record_id\s+rec_/m);
    expect(show.stdout).toMatch(/^metrics\s+\{"cpu_percent":2\}$/m);
    const json = JSON.parse(
      (await geofence(['records', 'show', String(stored[2]?.id), '-d', dir, '-o', 'json'])).stdout,
    );
    expect(json.record_id).toBe(stored[2]?.id);
  });

  it('answers errors with one stderr line and the documented exit codes', async () => {
    const [missing, since, limit] = await Promise.all([
      geofence(['records', 'show', 'rec_nope', '-d', dir, '-o', 'json']),
      geofence(['records', 'list', '-d', dir, '--since', 'yesterday']),
      geofence(['records', 'list', '-d', dir, '-l', '5000']),
    ]);
    expect(missing).toMatchObject({ code: 2, stdout: '', stderr: 'geofence: record rec_nope not found\n' });
    expect(since.code).toBe(2);
    expect(since.stdout).toBe('');
    expect(since.stderr.trim().split('\n')).toHaveLength(1);
    expect(limit.code).toBe(2);
  });

  it('verify-record prints a table of checks by default and JSON with -o json', async () => {
    const [table, json] = await Promise.all([
      geofence(['verify-record', String(stored[0]?.id), '-d', dir]),
      geofence(['verify-record', String(stored[0]?.id), '-d', dir, '-o', 'json']),
    ]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/: valid$/);
    expect(table.stdout).toMatch(/^payload_signature\s+ok/m);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, record_id: stored[0]?.id });
  });
});
