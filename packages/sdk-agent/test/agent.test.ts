import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SwtpmInstance, startSwtpm, Tpm } from '@geofence/native-tpm';
import { GeofenceError, metricsPayloadSchema, VALIDATION_TYPES } from '@geofence/verifier';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../src/agent.js';
import {
  AgentOptionsError,
  DeliveryError,
  DeliveryUncertainError,
  GeofenceRejection,
} from '../src/errors.js';
import { staticLocation } from '../src/location/static.js';
import type { AgentLogger } from '../src/options.js';
import { startCollector, type TestCollector } from './helpers/collector.js';
import { makePki, type TestPki } from './helpers/pki.js';

let swtpm: SwtpmInstance;
let tpm: Tpm;
let pki: TestPki;
let collector: TestCollector;

const SANTA_CLARA = { region: 'US', state: 'California', city: 'Santa Clara' };
const CA_POLICY = { allow: [{ region: 'US', state: 'California', city: 'Santa Clara' }] };

const agents: Agent[] = [];
function logger(): AgentLogger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (obj: object, msg?: string) =>
    lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** A registered agent (key created in swtpm, registered directly in the collector's registry). */
async function agentFor(
  name: string,
  opts: { location?: object; register?: boolean; geo?: object; [k: string]: unknown } = {},
): Promise<Agent> {
  const { location, register = true, geo = CA_POLICY, ...rest } = opts;
  const agent = createAgent({
    name,
    tpm,
    gateway: collector.url,
    tls: { ca: pki.caPem },
    location: staticLocation((location as typeof SANTA_CLARA) ?? SANTA_CLARA),
    stateDir: mkdtempSync(join(tmpdir(), `${name}-`)),
    retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
    outbox: false,
    logger: logger(),
    ...rest,
  });
  agents.push(agent);
  const id = await agent.ready();
  if (register) await collector.register(name, id.publicKeyPem, id.keyid, geo, id.alg);
  return agent;
}

beforeAll(async () => {
  pki = makePki();
  swtpm = await startSwtpm({ ekCert: false, timeoutMs: 60_000 });
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  collector = await startCollector(pki);
});

afterAll(async () => {
  for (const a of agents) await a.close();
  await collector?.stop();
  await tpm?.close();
  await swtpm?.stop();
});

describe('Agent.send against a TLS collector with swtpm', () => {
  it('delivers a TPM-signed message that the collector accepts and stores', async () => {
    const agent = await agentFor('agent-001');
    const { recordId } = await agent.send({ cpu: 0.42, host: 'edge-1' });
    const rec = collector.records.find((r) => r.recordId === recordId)!;
    expect(rec.agentName).toBe('agent-001');
    expect(rec.metrics).toEqual({ cpu: 0.42, host: 'edge-1' });
    const payload = metricsPayloadSchema.parse(JSON.parse(rec.raw));
    expect(payload.geographic_region).toEqual(SANTA_CLARA);
    expect(payload.algorithm).toBe('ecdsa-p256-sha256');
    expect(payload.tpm_public_key_hash).toBe((await agent.ready()).keyid);
    expect(agent.status()).toMatchObject({
      delivered: 1,
      rejected: 0,
      tpmReady: true,
      lastSend: { ok: true, recordId },
    });
  });

  it('nonceBatch: one signed GET /nonce?count=n per n messages, each nonce accepted once', async () => {
    const agent = await agentFor('agent-batch', { nonceBatch: 4 });
    const before = collector.hits['/nonce'] ?? 0;
    const ids = new Set<string>();
    // One at a time, so each message is its own delivery (and takes its own nonce).
    for (let i = 0; i < 8; i++) ids.add((await agent.send({ seq: i })).recordId);
    expect(ids.size).toBe(8);
    expect((collector.hits['/nonce'] ?? 0) - before).toBe(2);
    const nonces = collector.records
      .filter((r) => ids.has(r.recordId))
      .map((r) => (JSON.parse(r.raw) as { nonce: string }).nonce);
    expect(new Set(nonces).size).toBe(8);
  });

  it('nonceBatch needs signed nonce requests (a clear option error)', () => {
    expect(() =>
      createAgent({
        name: 'agent-x',
        tpm,
        gateway: collector.url,
        tls: { ca: pki.caPem },
        location: staticLocation(SANTA_CLARA),
        stateDir: mkdtempSync(join(tmpdir(), 'agent-x-')),
        outbox: false,
        nonceBatch: 4,
        signNonceRequests: false,
      }),
    ).toThrow(/nonceBatch: batches are issued to signed nonce requests only/);
  });

  it('sends with an RSA-2048 AppSK (rsa-v1_5-sha256)', async () => {
    const agent = await agentFor('agent-rsa', { algorithm: 'rsa-2048' });
    const { recordId } = await agent.send({ n: 1 });
    const payload = JSON.parse(collector.records.find((r) => r.recordId === recordId)!.raw);
    expect(payload.algorithm).toBe('rsa-v1_5-sha256');
  });

  it('RSA (deterministic signatures): nonce requests signed within one second still differ', async () => {
    // The collector accepts each signed GET /nonce once; RSASSA-PKCS1-v1_5 gives the same bytes
    // for the same base, so the agent varies `expires` within a second.
    const agent = await agentFor('agent-rsa-burst', { algorithm: 'rsa-2048', coalesceMs: 0 });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await agent.send({ n: i })).recordId);
    expect(new Set(ids).size).toBe(6);
    expect(agent.status()).toMatchObject({ delivered: 6, rejected: 0 });
  });

  it('reuses the AppSK stored in the state directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-reuse-'));
    const opts = {
      name: 'agent-reuse',
      tpm,
      gateway: collector.url,
      tls: { ca: pki.caPem },
      location: staticLocation(SANTA_CLARA),
      stateDir: dir,
      outbox: false as const,
    };
    const a = createAgent(opts);
    const k1 = (await a.ready()).keyid;
    await a.close();
    const b = createAgent(opts);
    expect((await b.ready()).keyid).toBe(k1);
    await b.close();
  });

  it('surfaces an unknown key as GeofenceRejection agent_verification, without retrying', async () => {
    const agent = await agentFor('agent-unregistered-003', { register: false });
    const before = collector.hits['/nonce'] ?? 0;
    const err = await agent.send({ a: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GeofenceRejection);
    expect(err).toMatchObject({
      status: 403,
      validationType: 'agent_verification',
      rejectedBy: 'collector',
      error: 'Agent not found in allowlist',
    });
    expect((collector.hits['/nonce'] ?? 0) - before).toBe(1);
    expect(agent.status()).toMatchObject({
      rejected: 1,
      lastSend: { ok: false, code: 'agent_verification' },
    });
  });

  it('surfaces a location outside the agent policy as geolocation_policy with details', async () => {
    const agent = await agentFor('agent-geo-policy-violation-002', {
      location: { region: 'EU', state: 'Germany', city: 'Berlin' },
    });
    const err = (await agent.send({ a: 1 }).catch((e: unknown) => e)) as GeofenceRejection;
    expect(err).toBeInstanceOf(GeofenceRejection);
    expect(err.status).toBe(403);
    expect(err.validationType).toBe('geolocation_policy');
    expect(err.details).toMatchObject({
      agent_name: 'agent-geo-policy-violation-002',
      received: { region: 'EU' },
    });
  });

  it('maps every aligned 4xx problem to a GeofenceRejection of that validation type, never retried', async () => {
    const agent = await agentFor('agent-problems');
    const fourxx = VALIDATION_TYPES.filter((vt) => !['upstream', 'internal', 'rate_limit'].includes(vt));
    for (const vt of fourxx) {
      const problem = new GeofenceError(vt, undefined, { details: { probe: vt } });
      collector.failNext(1, problem);
      const before = collector.hits['/nonce'] ?? 0;
      const err = (await agent.send({ vt }).catch((e: unknown) => e)) as GeofenceRejection;
      expect(err).toBeInstanceOf(GeofenceRejection);
      expect({
        status: err.status,
        vt: err.validationType,
        by: err.rejectedBy,
        details: err.details,
      }).toEqual({
        status: problem.status,
        vt,
        by: 'gateway',
        details: { probe: vt },
      });
      expect(err.problem?.type).toBe(`urn:geofence:error:${vt}`);
      expect((collector.hits['/nonce'] ?? 0) - before).toBe(1);
    }
  });

  it('retries a 429 after Retry-After (the only retried 4xx) and reports it when it persists', async () => {
    const agent = await agentFor('agent-ratelimited');
    collector.failNext(1, new GeofenceError('rate_limit', undefined, { retryAfter: 0 }));
    const before = collector.hits['/nonce'] ?? 0;
    const { recordId } = await agent.send({ n: 1 });
    expect(collector.records.some((r) => r.recordId === recordId)).toBe(true);
    expect((collector.hits['/nonce'] ?? 0) - before).toBe(2);
    collector.failNext(3, new GeofenceError('rate_limit', undefined, { retryAfter: 0 }));
    const err = (await agent.send({ n: 2 }).catch((e: unknown) => e)) as GeofenceRejection;
    expect(err).toBeInstanceOf(GeofenceRejection);
    expect({ status: err.status, vt: err.validationType }).toEqual({ status: 429, vt: 'rate_limit' });
  });

  it('retries a 503 with a fresh nonce and then succeeds', async () => {
    const agent = await agentFor('agent-retry');
    collector.failNext(1);
    const before = collector.hits['/nonce'] ?? 0;
    const { recordId } = await agent.send({ retry: true });
    expect(collector.records.some((r) => r.recordId === recordId)).toBe(true);
    expect((collector.hits['/nonce'] ?? 0) - before).toBe(2);
  });

  it('resends the identical signed request after a 5xx on POST, so one nonce serves both tries', async () => {
    const agent = await agentFor('agent-resend');
    collector.failNext(1, undefined, '/metrics');
    const nonces = collector.hits['/nonce'] ?? 0;
    const { recordId } = await agent.send({ resend: 1 });
    expect((collector.hits['/nonce'] ?? 0) - nonces).toBe(1);
    expect(collector.records.filter((r) => r.metrics.resend === 1).map((r) => r.recordId)).toEqual([
      recordId,
    ]);
  });

  it('stores a message at most once when the answer is lost after the collector processed it', async () => {
    const agent = await agentFor('agent-lost-answer');
    collector.dropNextAnswers(1);
    const err = await agent.send({ lost: 1 }).catch((e: unknown) => e);
    // The resend of the same bytes meets a consumed nonce: processed once, never sent again.
    expect(err).toBeInstanceOf(DeliveryUncertainError);
    expect((err as DeliveryUncertainError).code).toBe('uncertain');
    expect(collector.records.filter((r) => r.metrics.lost === 1)).toHaveLength(1);
  });

  it('gives up with DeliveryError after the configured attempts when there is no outbox', async () => {
    const agent = await agentFor('agent-giveup');
    collector.failNext(3);
    const err = await agent.send({ x: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).attempts).toBe(3);
    expect(agent.status().outbox.pending).toBe(0);
  });

  it('shares the TPM safely between concurrent sends', async () => {
    const a1 = await agentFor('agent-conc-1');
    const a2 = await agentFor('agent-conc-2');
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? a1 : a2).send({ i })));
    const ids = results.map((r) => r.recordId);
    expect(new Set(ids).size).toBe(24);
    const got = collector.records.filter((r) => ids.includes(r.recordId)).map((r) => r.metrics.i as number);
    expect(got.sort((x, y) => x - y)).toEqual(Array.from({ length: 24 }, (_, i) => i));
  });

  it('signs a batch once: one record holding every metric set', async () => {
    const agent = await agentFor('agent-batch');
    const items = Array.from({ length: 50 }, (_, i) => ({ i }));
    const { recordId } = await agent.sendBatch(items);
    const rec = collector.records.find((r) => r.recordId === recordId)!;
    expect(rec.metrics).toEqual({ batch: items });
  });

  it('coalesces sends within the window into batches and resolves each caller', async () => {
    const agent = await agentFor('agent-coalesce', { coalesceMs: 300 });
    const before = collector.records.length;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => agent.send({ i })));
    const recs = collector.records.slice(before);
    expect(recs.length).toBeLessThan(10);
    const flat = recs.flatMap((r) => (r.metrics.batch as Array<{ i: number }>) ?? [r.metrics]);
    expect(flat.map((m) => m.i)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    for (const [i, r] of results.entries()) {
      const rec = recs.find((x) => x.recordId === r.recordId)!;
      expect(((rec.metrics.batch as Array<{ i: number }>) ?? [rec.metrics]).some((m) => m.i === i)).toBe(
        true,
      );
    }
  });
});

describe('signed nonce requests', () => {
  it('signs GET /nonce by default, which a collector requiring it accepts; unsigned is refused there', async () => {
    const strict = await startCollector(pki, undefined, { requireNonceSignature: true });
    try {
      const mk = (name: string, signNonceRequests?: boolean) =>
        createAgent({
          name,
          tpm,
          gateway: strict.url,
          tls: { ca: pki.caPem },
          location: staticLocation(SANTA_CLARA),
          stateDir: mkdtempSync(join(tmpdir(), `${name}-`)),
          outbox: false,
          retry: { attempts: 1 },
          logger: logger(),
          ...(signNonceRequests === undefined ? {} : { signNonceRequests }),
        });
      const signed = mk('agent-signed-nonce');
      const unsigned = mk('agent-unsigned-nonce', false);
      agents.push(signed, unsigned);
      for (const a of [signed, unsigned]) {
        const id = await a.ready();
        await strict.register(a.name, id.publicKeyPem, id.keyid, CA_POLICY, id.alg);
      }
      const { recordId } = await signed.send({ a: 1 });
      expect(strict.records.some((r) => r.recordId === recordId)).toBe(true);
      await expect(unsigned.send({ a: 1 })).rejects.toMatchObject({
        status: 400,
        validationType: 'request_validation',
      });
    } finally {
      await strict.stop();
    }
  });
});

describe('TLS and options', () => {
  it('refuses a gateway certificate from another CA', async () => {
    const agent = await agentFor('agent-wrong-ca', { tls: { ca: pki.otherCaPem }, retry: { attempts: 1 } });
    const err = await agent.send({ a: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect(String((err as Error).message)).toMatch(/certificate/i);
  });

  it('accepts any certificate only with insecureSkipVerify, and warns', async () => {
    const log = logger();
    const agent = await agentFor('agent-insecure', { tls: { insecureSkipVerify: true }, logger: log });
    await agent.send({ a: 1 });
    expect(log.lines.some((l) => l.startsWith('warn') && /verification is DISABLED/.test(l))).toBe(true);
  });

  it('validates options at construction', () => {
    const base = {
      name: 'a',
      tpm,
      gateway: 'https://127.0.0.1:1',
      location: staticLocation(SANTA_CLARA),
      outbox: false as const,
    };
    expect(() => createAgent({ ...base, name: '../evil' })).toThrow(AgentOptionsError);
    expect(() => createAgent({ ...base, gateway: 'ftp://x' })).toThrow(AgentOptionsError);
    expect(() => createAgent({ ...base, gateway: 'https://u:p@127.0.0.1:1' })).toThrow(/credentials/);
    expect(() => createAgent({ ...base, gateway: 'http://127.0.0.1:1' })).toThrow(/plain http/);
    expect(() => createAgent({ ...base, signatureValiditySeconds: 301 })).toThrow(AgentOptionsError);
    expect(() => createAgent({ ...base, tpm: {} as never })).toThrow(AgentOptionsError);
  });

  it('rejects metrics that are not a JSON object', async () => {
    const agent = await agentFor('agent-badmetrics');
    await expect(agent.send([1] as never)).rejects.toThrow(TypeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(agent.send(cyclic)).rejects.toThrow(TypeError);
    await expect(agent.sendBatch([{ a: 1n } as never])).rejects.toThrow(TypeError);
    await expect(agent.sendBatch([])).rejects.toThrow(TypeError);
  });
});
