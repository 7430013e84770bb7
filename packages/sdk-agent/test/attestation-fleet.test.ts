/**
 * Three agents on three swtpm instances enrol concurrently against one collector served by Fastify
 * (the demo's setup); then each proves its location. Exercises the Fastify wiring over real HTTP.
 * The wall time is printed for the record (the benchmark `bench/attestation-enroll.bench.ts` reports it).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SwtpmInstance, startSwtpm, Tpm } from '@geofence/native-tpm';
import {
  AttestationResultSigner,
  attestationFastifyPlugin,
  EnrollmentService,
  type GeoPolicy,
  MemoryNonceStore,
  SqliteRegistry,
} from '@geofence/verifier';
import Fastify from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type AttestationPost,
  performEnrollment,
  performLocationAttestation,
} from '../src/attestation/index.js';
import { AgentState } from '../src/state.js';

const fence = (lon: number, lat: number): GeoPolicy => ({
  fences: [
    {
      type: 'Polygon',
      coordinates: [
        [
          [lon - 0.2, lat - 0.2],
          [lon + 0.2, lat - 0.2],
          [lon + 0.2, lat + 0.2],
          [lon - 0.2, lat + 0.2],
          [lon - 0.2, lat - 0.2],
        ],
      ],
    },
  ],
});
const AGENTS = [
  { name: 'agent-001', lon: -121.955, lat: 37.354 },
  { name: 'agent-geo-policy-violation-002', lon: -121.955, lat: 37.354 },
  { name: 'agent-unregistered-003', lon: 13.405, lat: 52.52 },
];

let swtpms: SwtpmInstance[] = [];
let tpms: Tpm[] = [];
let dir: string;
let registry: SqliteRegistry;
let app: ReturnType<typeof Fastify>;
let base: string;
const nonces = new MemoryNonceStore();

const post: AttestationPost = async (path, json) => {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(json),
  });
  return { status: res.status, body: await res.json() };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fleet-test-'));
  swtpms = await Promise.all(AGENTS.map(() => startSwtpm()));
  tpms = await Promise.all(swtpms.map((s) => Tpm.open({ tcti: s.tcti })));
  registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  const signer = await AttestationResultSigner.create({
    key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    issuer: 'https://collector.test',
  });
  const policy = {
    ekCaBundle: swtpms.flatMap((s) => s.ekCaCertificates),
    agents: AGENTS.slice(0, 2).map((a) => ({
      agentName: a.name,
      ek: 'any-trusted-ca' as const,
      geoPolicy: fence(-121.955, 37.354),
    })),
  };
  app = Fastify();
  await app.register(attestationFastifyPlugin, {
    enrollment: new EnrollmentService({ registry, signer, policy }),
    location: { registry, nonces, signer, policy: {} },
    signer,
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await app?.close();
  await registry?.close();
  await Promise.all(tpms.map((t) => t.close()));
  await Promise.all(swtpms.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

it('enrols three agents on three TPMs concurrently and appraises their locations', async () => {
  const image = join(dir, 'agent.js');
  writeFileSync(image, 'console.log("agent");\n');
  const started = performance.now();
  const results = await Promise.all(
    AGENTS.map((a, i) =>
      performEnrollment({
        agentName: a.name,
        tpm: tpms[i] as Tpm,
        state: AgentState.open(join(dir, a.name)),
        post,
        workload: { name: 'metrics-agent', version: '1.0.0', imagePath: image },
        sensor: { type: 'gnss', model: 'sim', serial: `SN-${i}` },
      }),
    ),
  );
  const ms = performance.now() - started;
  console.log(`attestation fleet: 3 agents on 3 swtpm enrolled in ${ms.toFixed(0)} ms`);
  expect(results.map((r) => r.status)).toEqual(['active', 'active', 'pending']);
  expect(new Set(results.map((r) => r.keyid)).size).toBe(3);
  expect(new Set(results.map((r) => r.ak.public.toString())).size).toBe(3);

  const outcomes = await Promise.all(
    AGENTS.map((a, i) =>
      performLocationAttestation({
        tpm: tpms[i] as Tpm,
        state: AgentState.open(join(dir, a.name)),
        post,
        nonce: async (keyid) => (await nonces.issue(keyid)).nonce,
        location: { lat: a.lat, lon: a.lon, accuracy: 10 },
      }).then(
        (o) => o.trustLevel,
        (e: { validationType?: string; details?: { check?: string } }) =>
          `${e.validationType}:${e.details?.check}`,
      ),
    ),
  );
  // agent-003 is pending (not pre-registered): location attestation refuses inactive agents.
  expect(outcomes).toEqual(['low', 'low', 'agent_verification:undefined']);

  const bad = await fetch(`${base}/attest/location`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: 'x',
  });
  expect(bad.status).toBe(415);
  expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const jwks = await (await fetch(`${base}/.well-known/jwks.json`)).json();
  expect(jwks).toMatchObject({ keys: [{ kty: 'EC', alg: 'ES256' }] });
});
