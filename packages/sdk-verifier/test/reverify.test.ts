/**
 * reverifyRecord: offline re-verification of a stored record with the collector's own checks. The
 * high-s twin of an HTTP signature, a body with a duplicate member name and a record signed long ago
 * are the cases the reference server's former copy of these checks decided differently.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonFileRegistry, reverifyRecord, type StoredMetricsRequest } from '../src/index.js';
import { buildMetricsRequest, flipS, makeAgent } from './helpers/signed-request.js';

const dir = mkdtempSync(join(tmpdir(), 'geofence-reverify-'));
let registry: JsonFileRegistry;
const agent = makeAgent('agent-001');
const nonce = Buffer.alloc(32, 7).toString('base64url');

beforeAll(async () => {
  registry = await JsonFileRegistry.open({ path: join(dir, 'a.json'), watch: false });
  await registry.put(agent.record);
});
afterAll(async () => {
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

async function stored(o: { created?: Date; unsigned?: boolean } = {}): Promise<StoredMetricsRequest> {
  const b = await buildMetricsRequest(agent, { nonce, ...o, ...(o.created ? { timestamp: o.created } : {}) });
  return { rawBody: Buffer.from(b.body!), headers: b.headers, path: b.path };
}

const failed = (v: { checks: Array<{ check: string; ok: boolean }> }) =>
  v.checks.filter((c) => !c.ok).map((c) => c.check);

describe('reverifyRecord', () => {
  it('verifies a record signed a year ago, at its own created time', async () => {
    const v = await reverifyRecord(await stored({ created: new Date(Date.now() - 365 * 86_400_000) }), {
      registry,
    });
    expect(v).toEqual({
      valid: true,
      checks: [
        { check: 'payload_schema', ok: true },
        { check: 'registry_keyid', ok: true },
        { check: 'agent_name', ok: true, detail: 'registry: agent-001' },
        { check: 'agent_status', ok: true, detail: 'status: active' },
        { check: 'payload_signature', ok: true },
        { check: 'http_signature', ok: true },
      ],
    });
  });

  it('says when the HTTP signature was not stored', async () => {
    const v = await reverifyRecord(await stored({ unsigned: true }), { registry });
    expect(v.valid).toBe(true);
    expect(v.checks.at(-1)).toEqual({
      check: 'http_signature',
      ok: true,
      detail: 'not stored (stripped by an enforcing gateway)',
    });
  });

  it('refuses the high-s twin of the HTTP signature, as the collector does', async () => {
    const rec = await stored();
    const sig = Buffer.from(/^geo=:([^:]+):$/.exec(rec.headers.signature!)![1]!, 'base64');
    const twin = { ...rec, headers: { ...rec.headers, signature: `geo=:${flipS(sig).toString('base64')}:` } };
    expect(failed(await reverifyRecord(twin, { registry }))).toEqual(['http_signature']);
  });

  it('refuses a body that gained a duplicate member name (JSON.parse would keep the last copy)', async () => {
    const rec = await stored({ unsigned: true });
    const text = Buffer.from(rec.rawBody).toString('utf8');
    const edited = `{"agent_name":"someone-else",${text.slice(1)}`;
    const v = await reverifyRecord({ ...rec, rawBody: Buffer.from(edited) }, { registry });
    expect(failed(v)).toEqual(['payload_schema']);
    expect(v.checks[0]!.detail).toMatch(/duplicate member names/);
  });

  it('fails a tampered body, an unknown keyid and a revoked agent', async () => {
    const rec = await stored();
    const tampered = Buffer.from(Buffer.from(rec.rawBody).toString('utf8').replace('12.5', '99.5'));
    expect(failed(await reverifyRecord({ ...rec, rawBody: tampered }, { registry }))).toEqual([
      'payload_schema',
    ]);
    const other = makeAgent('agent-002');
    const b = await buildMetricsRequest(other, { nonce });
    const unknown = await reverifyRecord({ rawBody: Buffer.from(b.body!), headers: b.headers }, { registry });
    expect(failed(unknown)).toEqual(['registry_keyid']);
    await registry.setStatus('agent-001', 'revoked');
    try {
      expect(failed(await reverifyRecord(rec, { registry }))).toEqual(['agent_status']);
    } finally {
      await registry.setStatus('agent-001', 'active');
    }
  });
});
