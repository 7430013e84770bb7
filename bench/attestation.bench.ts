/**
 * Attestation benchmark on swtpm (issue 5 "Done when"): how long enrolling three agents on three
 * swtpm instances takes (the demo's setup), concurrently and one after the other, over HTTP on
 * loopback against an Express collector; plus per-enrolment and per-location-attestation latency.
 *
 *   attestation.swtpm_start.3: starting three swtpm instances (manufacture + EK certificates)
 *   attestation.enroll3.concurrent / .sequential: wall time of three full enrolments
 *   attestation.enroll3.total_with_swtpm: swtpm start + concurrent enrolment
 *   attestation.enroll.p50/p99: one enrolment (both round trips) on one TPM
 *   attestation.location.p50/p99: one lah-bundle (nonce, quote, appraisal)
 *
 * Run: `npm run build -w packages/tpm-wire -w packages/native-tpm -w packages/http-sig -w packages/sdk-verifier`
 * then `node --import tsx bench/attestation.bench.ts [--json out.json] [--n 20]`.
 * The agent side is imported from source (tsx) so the benchmark does not depend on the agent's
 * public index; everything it imports resolves to the built packages.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSwtpm, Tpm } from '@geofence/native-tpm';
import {
  AttestationResultSigner,
  EnrollmentService,
  MemoryNonceStore,
  mountAttestationExpress,
  SqliteRegistry,
} from '@geofence/verifier';
import express from 'express';
import {
  type AttestationPost,
  performEnrollment,
  performLocationAttestation,
} from '../packages/sdk-agent/src/attestation/index.js';
import { AgentState } from '../packages/sdk-agent/src/state.js';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const N = Number(arg('--n') ?? 20);
const results: Record<string, { value: number; unit: string }> = {};
const report = (name: string, value: number, unit: string) => {
  results[name] = { value, unit };
  console.log(`${name}: ${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`);
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))] ?? Number.NaN;
};

const dir = mkdtempSync(join(tmpdir(), 'attestation-bench-'));
const image = join(dir, 'agent.js');
writeFileSync(image, 'console.log("agent");\n');

const t0 = performance.now();
const swtpms = await Promise.all([0, 1, 2].map(() => startSwtpm()));
const swtpmMs = performance.now() - t0;
const tpms = await Promise.all(swtpms.map((s) => Tpm.open({ tcti: s.tcti })));
const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
const nonces = new MemoryNonceStore();
const signer = await AttestationResultSigner.create({
  key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  issuer: 'https://collector.bench',
});
const fence = {
  fences: [
    {
      type: 'Polygon' as const,
      coordinates: [
        [
          [-122.1, 37.2],
          [-121.8, 37.2],
          [-121.8, 37.5],
          [-122.1, 37.5],
          [-122.1, 37.2],
        ],
      ],
    },
  ],
};
const names = Array.from({ length: 3 + N }, (_, i) => `bench-agent-${i}`);
const service = new EnrollmentService({
  registry,
  signer,
  policy: {
    ekCaBundle: swtpms.flatMap((s) => s.ekCaCertificates),
    agents: names.map((agentName) => ({ agentName, ek: 'any-trusted-ca' as const, geoPolicy: fence })),
  },
});
const app = express();
app.disable('x-powered-by');
mountAttestationExpress(app, {
  enrollment: service,
  location: { registry, nonces, signer, policy: {} },
  signer,
});
const server = app.listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const post: AttestationPost = async (path, json) => {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(json),
  });
  return { status: res.status, body: await res.json() };
};
const enrol = (name: string, tpm: Tpm) =>
  performEnrollment({
    agentName: name,
    tpm,
    state: AgentState.open(join(dir, name)),
    post,
    workload: { name: 'metrics-agent', version: '1.0.0', imagePath: image },
    sensor: { type: 'gnss', model: 'sim', serial: name },
  });

try {
  let t = performance.now();
  await Promise.all(tpms.map((tpm, i) => enrol(names[i] as string, tpm)));
  const concurrent = performance.now() - t;
  t = performance.now();
  for (const [i, tpm] of tpms.entries()) await enrol(names[i] as string, tpm);
  const sequential = performance.now() - t;
  report('attestation.swtpm_start.3', swtpmMs, 'ms');
  report('attestation.enroll3.concurrent', concurrent, 'ms');
  report('attestation.enroll3.sequential', sequential, 'ms');
  report('attestation.enroll3.total_with_swtpm', swtpmMs + concurrent, 'ms');

  const tpm = tpms[0] as Tpm;
  const one: number[] = [];
  for (let i = 0; i < N; i++) {
    const s = performance.now();
    await enrol(names[3 + i] as string, tpm);
    one.push(performance.now() - s);
  }
  report('attestation.enroll.p50', pct(one, 0.5), 'ms');
  report('attestation.enroll.p99', pct(one, 0.99), 'ms');

  const loc: number[] = [];
  const state = AgentState.open(join(dir, names[0] as string));
  for (let i = 0; i < N; i++) {
    const s = performance.now();
    await performLocationAttestation({
      tpm,
      state,
      post,
      nonce: async (keyid) => (await nonces.issue(keyid)).nonce,
      location: { lat: 37.354, lon: -121.955, accuracy: 8.5 },
    });
    loc.push(performance.now() - s);
  }
  report('attestation.location.p50', pct(loc, 0.5), 'ms');
  report('attestation.location.p99', pct(loc, 0.99), 'ms');
  const json = arg('--json');
  if (json) writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
} finally {
  await new Promise((r) => server.close(r));
  await registry.close();
  await Promise.all(tpms.map((t) => t.close()));
  await Promise.all(swtpms.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
}
