import { join } from 'node:path';
import { isProblem, SqliteRegistry } from '@geofence/verifier';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tamper } from '../src/demo/raw.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { verifyStoredRecord } from '../src/verify-record.js';
import { ADMIN, silentLog, testConfig, testDataDir } from './helpers/env.js';
import {
  client,
  http,
  postMetrics,
  register,
  type SoftAgent,
  signedRequest,
  softAgent,
} from './helpers/soft-agent.js';

let col: RunningCollector;
let registry: SqliteRegistry;
let c: Agent;
const a1 = softAgent('agent-001');
const revoked = softAgent('agent-revoked');

beforeAll(async () => {
  const { dir, pki } = await testDataDir('collector');
  registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  await register(registry, a1);
  await register(registry, revoked);
  col = await startCollector(
    testConfig('collector', dir, {
      rateLimit: { perIpPerSecond: 1000, perIpBurst: 1000, perKeyidPerSecond: 1000, perKeyidBurst: 1000 },
    }),
    { log: silentLog },
  );
  c = client(pki.ca);
});

afterAll(async () => {
  await col?.close();
  await registry?.close();
  await c?.close();
});

const url = (p: string) => `${col.url}${p}`;

describe('collector', () => {
  it('serves health and readiness', async () => {
    expect((await http(c, url('/health'))).json).toMatchObject({ status: 'healthy', role: 'collector' });
    const ready = await http(c, url('/ready'));
    expect(ready.status).toBe(200);
    expect(ready.json.checks).toEqual({ registry: true, nonce_store: true, record_store: true });
  });

  it('refuses nonces without a keyid (400) and for unknown keyids (403 agent_verification)', async () => {
    const missing = await http(c, url('/nonce'));
    expect(missing.status).toBe(400);
    expect(missing.json.validation_type).toBe('request_validation');
    const unknown = await http(c, url(`/nonce?public_key_hash=${'0'.repeat(64)}`));
    expect(unknown.status).toBe(403);
    expect(isProblem(unknown.json)).toBe(true);
    expect(unknown.json).toMatchObject({ validation_type: 'agent_verification', rejected_by: 'collector' });
  });

  let recordId = '';
  let accepted: Awaited<ReturnType<typeof signedRequest>>;

  it('accepts a signed message, stores it durably with its raw body, and refuses its replay', async () => {
    accepted = await signedRequest(c, col.url, a1);
    const ok = await postMetrics(c, col.url, accepted);
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({
      status: 'success',
      message: 'Metrics received and verified successfully',
    });
    recordId = String(ok.json.record_id);
    const stored = await col.deps.records.get(recordId);
    expect(Buffer.from(stored?.rawBody ?? []).equals(accepted.body)).toBe(true);
    expect(stored?.httpSignature?.keyid).toBe(a1.keyid);
    expect(stored?.verdict.checks).toContain('nonce_validation');
    expect(stored?.headers['signature-input']).toBe(accepted.headers['signature-input']);
    const replay = await postMetrics(c, col.url, accepted);
    expect(replay.status).toBe(401);
    expect(replay.json).toMatchObject({ validation_type: 'nonce_validation', rejected_by: 'collector' });
  });

  it('refuses a tampered body and an expired signature', async () => {
    const t = await postMetrics(c, col.url, tamper(await signedRequest(c, col.url, a1)));
    expect(t.status).toBe(401);
    expect(t.json.validation_type).toBe('signature_verification');
    const old = await postMetrics(
      c,
      col.url,
      await signedRequest(c, col.url, a1, { now: new Date(Date.now() - 600_000) }),
    );
    expect(old.status).toBe(401);
    expect(old.json.validation_type).toBe('timestamp_proximity');
    const berlin = await postMetrics(
      c,
      col.url,
      await signedRequest(c, col.url, a1, { place: { region: 'EU', state: 'Germany', city: 'Berlin' } }),
    );
    expect(berlin.status).toBe(403);
    expect(berlin.json.validation_type).toBe('geolocation_policy');
  });

  it('re-verifies a stored record offline, and detects a modified one', async () => {
    const rec = await col.deps.records.get(recordId);
    expect(rec).toBeDefined();
    if (!rec) return;
    const v = await verifyStoredRecord(rec, registry);
    expect(v.valid).toBe(true);
    expect(v.checks.find((x) => x.check === 'http_signature')?.ok).toBe(true);
    const bad = await verifyStoredRecord(
      { ...rec, rawBody: tamper({ body: Buffer.from(rec.rawBody), headers: {} }).body },
      registry,
    );
    expect(bad.valid).toBe(false);
  });

  it('pages records for admins only', async () => {
    expect((await http(c, url('/metrics/records'))).status).toBe(403);
    const page = await http(c, url('/metrics/records?agent=agent-001&limit=1'), { headers: ADMIN });
    expect(page.status).toBe(200);
    const records = page.json.records as Array<{ record_id: string; body_base64: string }>;
    expect(records[0]?.record_id).toBe(recordId);
    expect(Buffer.from(records[0]?.body_base64 ?? '', 'base64').equals(accepted.body)).toBe(true);
    // The documented snake_case wire (docs/operations.md), mapped from the one camelCase record type.
    expect(records[0]).toEqual({
      record_id: recordId,
      agent_name: 'agent-001',
      keyid: a1.keyid,
      received_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      verdict: {
        accepted: true,
        checks: expect.arrayContaining(['signature_verification', 'nonce_validation', 'geolocation_policy']),
        geo: expect.any(Array),
        rejected_by: null,
      },
      http_signature: expect.objectContaining({
        keyid: a1.keyid,
        components: expect.arrayContaining(['@method']),
      }),
      payload: JSON.parse(accepted.body.toString('utf8')),
      body_base64: accepted.body.toString('base64'),
    });
    const bad = await http(c, url('/metrics/records?since=yesterday'), { headers: ADMIN });
    expect(bad.status).toBe(400);
  });

  it('reports nonce stats by keyid only, and cleans up for admins only', async () => {
    const n = await http(c, url(`/nonce?public_key_hash=${a1.keyid}`));
    const stats = await http(c, url('/nonces/stats'));
    expect(stats.status).toBe(200);
    expect(stats.text).not.toContain(String(n.json.nonce));
    expect(stats.json.outstanding).toBeGreaterThanOrEqual(1);
    expect((await http(c, url('/nonces/cleanup'), { method: 'POST' })).status).toBe(403);
    expect((await http(c, url('/nonces/cleanup'), { method: 'POST', headers: ADMIN })).status).toBe(200);
  });

  it('lets an admin pre-register an agent', async () => {
    const body = JSON.stringify({
      agent_name: 'agent-pre',
      ek: 'any-trusted-ca',
      geo_policy: { allow: [{ region: 'US' }] },
    });
    const headers = { 'content-type': 'application/json' };
    expect((await http(c, url('/agents'), { method: 'POST', headers, body })).status).toBe(403);
    const ok = await http(c, url('/agents'), { method: 'POST', headers: { ...headers, ...ADMIN }, body });
    expect(ok.status).toBe(201);
    expect(col.deps.enrollment.agents.map((a) => a.agentName)).toContain('agent-pre');
    const bad = await http(c, url('/agents'), {
      method: 'POST',
      headers: { ...headers, ...ADMIN },
      body: '{"agent_name":"x"}',
    });
    expect(bad.status).toBe(400);
  });

  it('lists agents and lets an admin revoke one (effective at once)', async () => {
    const anonymous = await http(c, url('/agents'));
    expect(anonymous.status).toBe(403);
    expect(anonymous.text).not.toContain('agent-001');
    const one = await http(c, url('/agents/agent-001'));
    expect(one.status).toBe(403);
    expect(one.text).not.toContain('keyid');
    const list = await http(c, url('/agents'), { headers: ADMIN });
    expect((list.json.agents as Array<{ agent_name: string }>).map((x) => x.agent_name)).toContain(
      'agent-001',
    );
    expect((await http(c, url('/agents/agent-001'), { headers: ADMIN })).json.agent_name).toBe('agent-001');
    expect((await http(c, url('/agents/nobody'), { headers: ADMIN })).status).toBe(403);
    expect((await http(c, url(`/nonce?public_key_hash=${revoked.keyid}`))).status).toBe(200);
    expect((await http(c, url('/agents/agent-revoked/revoke'), { method: 'POST' })).status).toBe(403);
    const r = await http(c, url('/agents/agent-revoked/revoke'), { method: 'POST', headers: ADMIN });
    expect(r.json.status).toBe('revoked');
    const after = await http(c, url(`/nonce?public_key_hash=${revoked.keyid}`));
    expect(after.status).toBe(403);
    expect(after.json.validation_type).toBe('agent_verification');
  });

  it('answers 413 for an oversized body, 404 for unknown routes, and exposes Prometheus metrics and JWKS', async () => {
    const big = await http(c, url('/metrics'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: Buffer.alloc(2 * 1024 * 1024, 0x20),
    }).catch((e: Error) => ({ status: -1, json: {}, text: e.message, headers: {} }));
    expect(big.status, big.text).toBe(413);
    const nf = await http(c, url('/admin'));
    expect(nf.status).toBe(404);
    const jwks = await http(c, url('/.well-known/jwks.json'));
    expect((jwks.json.keys as unknown[]).length).toBeGreaterThan(0);
    const prom = await http(c, url('/metrics-prometheus'));
    expect(prom.text).toContain('geofence_verification_duration_seconds_bucket');
    expect(prom.text).toMatch(/geofence_http_requests_total\{[^}]*validation_type="nonce_validation"/);
    expect(prom.text).toContain('geofence_nonce_store_outstanding');
    expect(prom.text).toContain('geofence_records_stored_total');
  });
});

describe('collector rate limits', () => {
  it('charges a keyid only for verified requests, so garbage under a victim keyid cannot starve it', async () => {
    const { dir, pki } = await testDataDir('collector-rl');
    const reg = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
    const victim = softAgent('victim');
    await register(reg, victim);
    const limited = await startCollector(
      testConfig('collector', dir, {
        rateLimit: { perIpPerSecond: 1000, perIpBurst: 1000, perKeyidPerSecond: 0.01, perKeyidBurst: 2 },
      }),
      { log: silentLog },
    );
    const cl = client(pki.ca);
    try {
      const forged = await signedRequest(cl, limited.url, victim); // charges 1 (nonce issued)
      for (let i = 0; i < 5; i++) {
        const r = await postMetrics(cl, limited.url, tamper(forged));
        expect(r.status).toBe(401);
      }
      const ok = await postMetrics(cl, limited.url, forged); // still within budget: charges the 2nd
      expect(ok.status).toBe(200);
      const limitedAnswer = await http(cl, `${limited.url}/nonce?public_key_hash=${victim.keyid}`);
      expect(limitedAnswer.status).toBe(429);
      expect(limitedAnswer.json).toMatchObject({ validation_type: 'rate_limit', rejected_by: 'collector' });
      expect(Number(limitedAnswer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    } finally {
      await limited.close();
      await reg.close();
      await cl.close();
    }
  });
});

export type { SoftAgent };
