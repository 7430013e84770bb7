/**
 * The edge agent service (`geofence agent`) on a real swtpm, enrolled at a real collector:
 * token-protected local API, system and application metrics, real status, verdicts passed through.
 */
import { join } from 'node:path';
import { createAgent, type Agent as GeofenceAgent, staticLocation } from '@geofence/agent';
import { type SwtpmInstance, startSwtpm } from '@geofence/native-tpm';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type RunningAgentService, startAgentService } from '../src/agent-service/service.js';
import { upsertPreRegistration } from '../src/preregistrations.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, http, SANTA_CLARA } from './helpers/soft-agent.js';

// Real processes (swtpm, collectors, tsx start-up) on a shared 2-core machine: generous per-test bound.
vi.setConfig({ testTimeout: 150_000 });

const TOKEN = 'local-agent-token-0123456789abcdef';
let swtpm: SwtpmInstance;
let col: RunningCollector;
let agent: GeofenceAgent;
let svc: RunningAgentService;
let c: Agent;
/** Trusts the CA but not the name: what a rebinding page's Host would fail at TLS is the Host check's job here. */
let rebinding: Agent;
let serverTls: { cert: string; key: string; minVersion: 'TLSv1.2' };

beforeAll(async () => {
  const { dir, pki } = await testDataDir('agentsvc');
  serverTls = { cert: pki.cert, key: pki.key, minVersion: 'TLSv1.2' };
  swtpm = await startSwtpm({ stateDir: join(dir, 'swtpm') });
  upsertPreRegistration(dir, {
    agent_name: 'agent-001',
    ek: 'any-trusted-ca',
    geo_policy: { allow: [SANTA_CLARA] },
  });
  col = await startCollector(testConfig('collector', dir), {
    log: silentLog,
    ekCaCertificates: swtpm.ekCaCertificates,
  });
  agent = createAgent({
    name: 'agent-001',
    tpm: { tcti: swtpm.tcti },
    gateway: col.url,
    tls: { ca: pki.ca },
    location: staticLocation(SANTA_CLARA),
    stateDir: join(dir, 'agent-state'),
    outbox: false,
    retry: { attempts: 1 },
    logger: silentLog,
  });
  const enrolled = await agent.enroll({ workload: { name: 'geofence-metrics-agent', version: '0.1.0' } });
  expect(enrolled.status).toBe('active');
  svc = await startAgentService({
    agent,
    agentName: 'agent-001',
    log: silentLog,
    token: TOKEN,
    intervalSeconds: 0,
    listen: { host: '127.0.0.1', port: 0, tls: { cert: pki.cert, key: pki.key, minVersion: 'TLSv1.2' } },
  });
  c = client(pki.ca);
  rebinding = new Agent({ connect: { ca: pki.ca, checkServerIdentity: () => undefined } });
});

afterAll(async () => {
  await svc?.close();
  await agent?.close();
  await col?.close();
  await swtpm?.stop();
  await c?.close();
  await rebinding?.close();
});

const auth = { authorization: `Bearer ${TOKEN}` };
const post = (body: unknown, headers: Record<string, string> = auth) =>
  http(c, `${svc.url}/metrics/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

describe('edge agent service', () => {
  it('listens on loopback and requires the local token (it is no signing oracle)', async () => {
    expect(svc.url).toMatch(/^https:\/\/127\.0\.0\.1:/);
    expect((await http(c, `${svc.url}/health`)).status).toBe(200);
    expect((await http(c, `${svc.url}/metrics/status`)).status).toBe(403);
    expect(
      (await post({ metric_type: 'system' }, { authorization: 'Bearer nope-nope-nope-nope-nope-nope' }))
        .status,
    ).toBe(403);
    expect((await http(c, `${svc.url}/sign`, { method: 'POST', headers: auth, body: '{}' })).status).toBe(
      404,
    );
  });

  it('refuses a DNS-rebinding page: foreign Host or cross-origin Origin → 403, even with the token', async () => {
    const port = new URL(svc.url).port;
    const status = async (headers: Record<string, string>) =>
      (await http(rebinding, `${svc.url}/metrics/status`, { headers: { ...auth, ...headers } })).status;
    expect(await status({})).toBe(200);
    expect(await status({ host: `localhost:${port}` })).toBe(200);
    expect(await status({ origin: `https://127.0.0.1:${port}` })).toBe(200);
    expect(await status({ host: `attacker.example:${port}` })).toBe(403);
    expect(await status({ origin: `https://attacker.example:${port}` })).toBe(403);
    expect(await status({ origin: 'https://127.0.0.1:1' })).toBe(403);
    expect(await status({ origin: 'null' })).toBe(403);
    const generate = await http(rebinding, `${svc.url}/metrics/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth, host: `attacker.example:${port}` },
      body: '{}',
    });
    expect(generate.status).toBe(403);
    expect(generate.json.validation_type).toBe('agent_verification');
  });

  it('answers a name the operator allowed (AGENT_ALLOWED_HOSTS), still refuses others', async () => {
    const named = await startAgentService({
      agent,
      agentName: 'agent-001',
      log: silentLog,
      token: TOKEN,
      intervalSeconds: 0,
      allowedHosts: ['Edge-1.example'],
      listen: { host: '127.0.0.1', port: 0, tls: serverTls },
    });
    try {
      const port = new URL(named.url).port;
      const status = async (host: string) =>
        (await http(rebinding, `${named.url}/metrics/status`, { headers: { ...auth, host } })).status;
      expect(await status(`edge-1.example:${port}`)).toBe(200);
      expect(await status(`attacker.example:${port}`)).toBe(403);
    } finally {
      await named.close();
    }
  });

  it('sends system metrics (default type) and application metrics with custom_data', async () => {
    const sys = await post({});
    expect(sys.status).toBe(200);
    const rec = await col.deps.records.get(String(sys.json.record_id));
    const payload = JSON.parse(Buffer.from(rec?.rawBody ?? Buffer.from('{}')).toString()) as {
      metrics: Record<string, Record<string, unknown>>;
    };
    expect(payload.metrics.type).toBe('system');
    expect(typeof payload.metrics.system?.cpu_percent).toBe('number');
    expect(typeof payload.metrics.system?.disk_usage_percent).toBe('number');
    const app = await post({
      metric_type: 'application',
      custom_data: { user_id: '12345', session_id: 'abc123' },
    });
    expect(app.status).toBe(200);
    const stored2 = await col.deps.records.get(String(app.json.record_id));
    const rec2 = JSON.parse(Buffer.from(stored2?.rawBody ?? Buffer.from('{}')).toString()) as {
      metrics: { application: Record<string, unknown> };
    };
    expect(rec2.metrics.application).toEqual({ user_id: '12345', session_id: 'abc123' });
  });

  it('rejects bad requests in the aligned format', async () => {
    const bad = await post({ metric_type: 'disk' });
    expect(bad.status).toBe(400);
    expect(bad.json.validation_type).toBe('request_validation');
    expect((await post({ metric_type: 'system', extra: 1 })).status).toBe(400);
    const big = await post({ metric_type: 'application', custom_data: { blob: 'x'.repeat(40_000) } });
    expect(big.status).toBe(413);
  });

  it('sends system metrics periodically', async () => {
    const periodic = await startAgentService({
      agent,
      agentName: 'agent-001',
      log: silentLog,
      token: TOKEN,
      intervalSeconds: 1,
      listen: { host: '127.0.0.1', port: 0 },
    });
    try {
      const before = await col.deps.records.count();
      for (let i = 0; i < 60 && (await col.deps.records.count()) < before + 2; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(await col.deps.records.count()).toBeGreaterThanOrEqual(before + 2);
    } finally {
      await periodic.close();
    }
  });

  it('reports real state and passes the collector verdict through', async () => {
    const st = await http(c, `${svc.url}/metrics/status`, { headers: auth });
    expect(st.json).toMatchObject({ agent_name: 'agent-001', enrolled: true, tpmReady: true, sent: 2 });
    expect((st.json.last_send as { ok: boolean }).ok).toBe(true);
    await col.deps.registry.setStatus('agent-001', 'revoked');
    const refused = await post({ metric_type: 'system' });
    expect(refused.status).toBe(403);
    expect(refused.json).toMatchObject({ validation_type: 'agent_verification', rejected_by: 'collector' });
    const after = await http(c, `${svc.url}/metrics/status`, { headers: auth });
    expect(after.json.last_send).toMatchObject({
      ok: false,
      status: 403,
      validation_type: 'agent_verification',
    });
  });

  it('reports whether the TPM answers now, not whether it answered once', async () => {
    const live = await http(c, `${svc.url}/metrics/status`, { headers: auth });
    expect(live.json).toMatchObject({ tpmReady: true, tpm_reachable: true });
    await swtpm.stop(); // last test of the file: the TPM goes away under a running agent
    const gone = await http(c, `${svc.url}/metrics/status`, { headers: auth });
    expect(gone.status).toBe(200);
    expect(gone.json).toMatchObject({ tpmReady: true, tpm_reachable: false });
  });
});
