/**
 * SPEC §16: nobody can use an agent's own nonce requests against it, in every deployment — direct,
 * standard gateway, enforcing gateway, and two collector replicas sharing a Redis nonce store.
 *
 * Two attacks, each must leave the victim's nonce valid:
 * - flood: 20 anonymous `GET /nonce` for the victim's keyid (they land in the anonymous pool);
 * - replay: the victim's captured signed `GET /nonce`, sent again 20 times (the gateway header log
 *   keeps whole requests). Before signed nonce requests were single-use, every replay issued a nonce
 *   into the victim's authenticated pool and the 17th evicted the victim's nonce.
 */
import { join } from 'node:path';
import {
  type NonceBatchResponse,
  type NonceResponse,
  nonceBatchResponseSchema,
  SqliteRegistry,
} from '@geofence/verifier';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSigned } from '../src/demo/raw.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { type RunningGateway, startGateway } from '../src/server/gateway.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { startRedis } from './helpers/procs.js';
import {
  client,
  http,
  postMetrics,
  register,
  SANTA_CLARA,
  signedNonceHeaders,
  softAgent,
} from './helpers/soft-agent.js';

const victim = softAgent('agent-001');
let redis: Awaited<ReturnType<typeof startRedis>>;
let registry: SqliteRegistry;
let replicaA: RunningCollector;
let replicaB: RunningCollector;
let standard: RunningGateway;
let enforcing: RunningGateway;
let c: Agent;

/** Where the victim obtains its nonce and where the attacker sends its requests. */
interface Deployment {
  agentBase: string;
  attackerBase: string;
}
let deployments: Record<string, Deployment>;

beforeAll(async () => {
  const env = await testDataDir('nonce-replay');
  redis = await startRedis();
  registry = await SqliteRegistry.open({ path: join(env.dir, 'registry.db') });
  await register(registry, victim);
  const shared = {
    rateLimit: { enabled: false },
    nonce: { store: 'redis', redisUrl: redis.url, maxOutstanding: 16 },
  };
  [replicaA, replicaB] = await Promise.all([
    startCollector(testConfig('collector', env.dir, shared), { log: silentLog }),
    startCollector(testConfig('collector', env.dir, shared), { log: silentLog }),
  ]);
  const gateway = (extra: Record<string, unknown>) =>
    startGateway(
      testConfig('gateway', env.dir, {
        rateLimit: { enabled: false },
        gateway: { collectorUrl: replicaA.url, ...extra },
      }),
      { log: silentLog },
    );
  [standard, enforcing] = await Promise.all([gateway({}), gateway({ policyEnforcement: true })]);
  c = client(env.pki.ca);
  deployments = {
    direct: { agentBase: replicaA.url, attackerBase: replicaA.url },
    'standard gateway': { agentBase: standard.url, attackerBase: standard.url },
    'enforcing gateway': { agentBase: enforcing.url, attackerBase: enforcing.url },
    'replicas on Redis': { agentBase: replicaA.url, attackerBase: replicaB.url },
  };
});

afterAll(async () => {
  for (const s of [standard, enforcing, replicaA, replicaB]) await s?.close();
  await registry?.close();
  await c?.close();
  await redis?.stop();
});

/** The victim's signed nonce request: the headers an attacker could capture, and the nonce it got. */
async function victimNonce(base: string) {
  const path = `/nonce?public_key_hash=${victim.keyid}`;
  const headers = await signedNonceHeaders(victim, `${base}${path}`);
  const r = await http(c, `${base}${path}`, { headers });
  expect(r.status, r.text).toBe(200);
  return { path, headers, nonce: r.json as unknown as NonceResponse };
}

function metricsWith(nonce: NonceResponse) {
  return buildSigned({
    agentName: victim.name,
    keyid: victim.keyid,
    signer: victim.signer,
    nonce,
    metrics: { cpu_percent: 12.5 },
    place: SANTA_CLARA,
    now: new Date(),
    validitySeconds: 60,
  });
}

const DEPLOYMENTS = ['direct', 'standard gateway', 'enforcing gateway', 'replicas on Redis'];

describe('nonce requests cannot be used against their agent', () => {
  it.each(
    DEPLOYMENTS,
  )('%s: a replayed signed GET /nonce is refused and the victim keeps its nonce', async (name) => {
    const d = deployments[name]!;
    const captured = await victimNonce(d.agentBase);
    for (let i = 0; i < 20; i++) {
      const replay = await http(c, `${d.attackerBase}${captured.path}`, { headers: captured.headers });
      expect(replay.status, `${name} replay ${i}: ${replay.text}`).toBe(401);
      expect(replay.json).toMatchObject({
        validation_type: 'nonce_validation',
        details: { reason: 'this signed nonce request was already used' },
      });
    }
    const r = await postMetrics(c, d.agentBase, await metricsWith(captured.nonce));
    expect(r.status, `${name}: ${r.text}`).toBe(200);
  });

  it.each(
    DEPLOYMENTS,
  )('%s: a flood of anonymous GET /nonce does not evict the victim’s signed nonce', async (name) => {
    const d = deployments[name]!;
    const { nonce } = await victimNonce(d.agentBase);
    for (let i = 0; i < 20; i++) {
      const flood = await http(c, `${d.attackerBase}/nonce?public_key_hash=${victim.keyid}`);
      expect(flood.status, name).toBe(200);
    }
    const r = await postMetrics(c, d.agentBase, await metricsWith(nonce));
    expect(r.status, `${name}: ${r.text}`).toBe(200);
  });

  it.each(
    DEPLOYMENTS,
  )('%s: one signed GET /nonce?count=16 gives 16 nonces, each accepted once (SPEC §16)', async (name) => {
    const d = deployments[name]!;
    const path = `/nonce?public_key_hash=${victim.keyid}&count=16`;
    const r = await http(c, `${d.agentBase}${path}`, {
      headers: await signedNonceHeaders(victim, `${d.agentBase}${path}`),
    });
    expect(r.status, `${name}: ${r.text}`).toBe(200);
    const batch = r.json as unknown as NonceBatchResponse;
    expect(nonceBatchResponseSchema.safeParse(batch).success, r.text).toBe(true);
    expect(new Set(batch.nonces.map((n) => n.nonce)).size).toBe(16);
    // an anonymous batch is refused: it would multiply what one unauthenticated request obtains
    const anon = await http(c, `${d.attackerBase}${path}`);
    expect(anon.status, anon.text).toBe(400);
    for (const n of batch.nonces) {
      const nonce = { nonce: n.nonce, expires_at: n.expires_at, expires_in: batch.expires_in };
      const req = await metricsWith(nonce);
      const ok = await postMetrics(c, d.agentBase, req);
      expect(ok.status, `${name}: ${ok.text}`).toBe(200);
      const again = await postMetrics(c, d.attackerBase, req);
      expect(again.status, `${name} replay`).toBe(401);
    }
  });

  it('a fresh signature of the same request is a new request (the agent re-signs every retry)', async () => {
    const first = await victimNonce(replicaA.url);
    // ECDSA signatures are randomised: signing the same request again gives another signature.
    const path = first.path;
    const again = await http(c, `${replicaB.url}${path}`, {
      headers: await signedNonceHeaders(victim, `${replicaB.url}${path}`),
    });
    expect(again.status, again.text).toBe(200);
  });
});
