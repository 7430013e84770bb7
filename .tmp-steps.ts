import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentDigest, createSigner, signRequest, verifyRequest } from '@geofence/http-sig';
import { payloadSigningInput, signPayload, METRICS_SIGNATURE_COMPONENTS, SIGNATURE_LABEL, SIGNATURE_TAG, verifyPayloadSignature } from '@geofence/protocol';
import { JsonFileRegistry, keyidOfPublicKey, MemoryNonceStore, recordPublicKey } from './packages/sdk-verifier/src/index.js';
import { resolveCollectorOptions } from './packages/sdk-verifier/src/pipeline/options.js';
import { checkGeo, checkTimes, parseMetricsRequest, verifyHeaders, METRICS_COMPONENTS, METRICS_PARAMS, pinned } from './packages/sdk-verifier/src/pipeline/steps.js';
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keyid = keyidOfPublicKey(publicKey);
const signer = createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid });
const dir = mkdtempSync(join(tmpdir(), 'gf-'));
const registry = await JsonFileRegistry.open({ path: join(dir, 'a.json'), watch: false });
await registry.put({ agent_name: 'agent-001', keyid, alg: 'ecdsa-p256-sha256', app_public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  geo_policy: { allow: [{ region: 'US', state: 'California', city: 'Santa Clara' }], fences: [{ type: 'Polygon', coordinates: [[[-122.1, 37.2],[-121.9, 37.2],[-121.9, 37.4],[-122.1, 37.4],[-122.1, 37.2]]] }] }, status: 'active' });
const nonces = new MemoryNonceStore({ maxOutstanding: 1_000_000 });
const options = { registry, nonces, onAccept: () => '1' };
const r = resolveCollectorOptions(options as never);
const record = (await registry.getByKeyid(keyid))!;
const { nonce } = await nonces.issue(keyid);
const payload = await signPayload({ version: 1, agent_name: 'agent-001', tpm_public_key_hash: keyid, nonce, timestamp: new Date().toISOString(),
  metrics: { cpu_percent: 12.5, mem_mb: 512, disk: { used: 1234567, free: 7654321 } }, geographic_region: { region: 'US', state: 'California', city: 'Santa Clara' },
  location: { lat: 37.35, lon: -121.97, accuracy: 25, quality: 'GNSS' } } as never, signer);
const body = JSON.stringify(payload);
const headers: Record<string, string> = { 'content-type': 'application/json', 'content-digest': contentDigest(body), 'workload-geo-id': JSON.stringify({ client_workload_id: 'agent-001', client_workload_location: { region: 'US', state: 'California', city: 'Santa Clara' }, client_workload_location_type: 'geographic-region', client_workload_location_quality: 'GNSS', client_type: 'thick' }) };
const created = Math.floor(Date.now() / 1000);
Object.assign(headers, await signRequest({ method: 'POST', url: '/metrics', headers, body }, { signer, components: METRICS_SIGNATURE_COMPONENTS, label: SIGNATURE_LABEL, tag: SIGNATURE_TAG, nonce, created, expires: created + 300 }));
const req = { method: 'POST', url: '/metrics', headers, rawBody: Buffer.from(body) };
const key = recordPublicKey(record);
const time = async (name: string, n: number, f: () => unknown) => {
  for (let i = 0; i < n; i++) await f();
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await f();
  const u = process.cpuUsage(t0);
  console.log(`${name}: ${((u.user + u.system) / n).toFixed(2)} us`);
};
import { verify as cv } from 'node:crypto';
const input = payloadSigningInput(payload);
const sigBytes = Buffer.from(payload.signature, 'base64url');
const parsed = parseMetricsRequest(req as never, r, false);
const now = new Date();
const only = process.argv[2];
const tests: Record<string, () => unknown> = {
  parseMetricsRequest: () => parseMetricsRequest(req as never, r, false),
  checkGeo: () => checkGeo(options as never, r, now, 'agent-001', record, parsed.payload, parsed.geoHeader),
  checkTimes: () => checkTimes(r, now.getTime(), parsed.payload.timestamp, { created, expires: created + 300 } as never),
  payloadSigningInput: () => payloadSigningInput(parsed.raw),
  verifyPayloadSignature: () => verifyPayloadSignature(parsed.raw as never, key),
  verifyHeaders_nocrypto: () => verifyHeaders(req as never, r, METRICS_COMPONENTS, METRICS_PARAMS, async () => pinned(record), false),
  verifyHeaders: () => verifyHeaders(req as never, r, METRICS_COMPONENTS, METRICS_PARAMS, async () => pinned(record), true),
  getByKeyid: () => registry.getByKeyid(keyid),
  jsonparse: () => JSON.parse(body),
  bare1: () => cv('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, sigBytes),
  fullVerify: async () => { const { nonce } = await nonces.issue(keyid); },

};
for (const [k, f] of Object.entries(tests)) if (only !== 'none' && !only || k === only) await time(k, k.includes('erify') && !k.includes('nocrypto') ? 3000 : 20000, f);
import { createCollectorVerifier } from './packages/sdk-verifier/src/index.js';
const collector = createCollectorVerifier(options as never);
async function prep(n: number) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const { nonce } = await nonces.issue(keyid);
    const p = await signPayload({ version: 1, agent_name: 'agent-001', tpm_public_key_hash: keyid, nonce, timestamp: new Date().toISOString(),
      metrics: { cpu_percent: 12.5 + i, mem_mb: 512, disk: { used: 1234567, free: 7654321 } }, geographic_region: { region: 'US', state: 'California', city: 'Santa Clara' },
      location: { lat: 37.35, lon: -121.97, accuracy: 25, quality: 'GNSS' } } as never, signer);
    const b = JSON.stringify(p);
    const h: Record<string, string> = { ...headers, 'content-digest': contentDigest(b) };
    delete h.signature; delete h['signature-input'];
    const c = Math.floor(Date.now() / 1000);
    Object.assign(h, await signRequest({ method: 'POST', url: '/metrics', headers: h, body: b }, { signer, components: METRICS_SIGNATURE_COMPONENTS, label: SIGNATURE_LABEL, tag: SIGNATURE_TAG, nonce, created: c, expires: c + 300 }));
    out.push({ method: 'POST', url: '/metrics', headers: h, rawBody: Buffer.from(b) });
  }
  return out;
}
for (let round = 0; round < Number(process.env.R ?? 4); round++) {
  const reqs = await prep(1000);
  const w0 = performance.now();
  const t0 = process.cpuUsage();
  for (const q of reqs) await collector.verify(q as never);
  const u = process.cpuUsage(t0);
  const w = performance.now() - w0;
  console.log(`wall ${w.toFixed(0)} us/req; user ${(u.user/1000).toFixed(1)} sys ${(u.system/1000).toFixed(1)}`);
  const t1 = process.cpuUsage();
  for (let i = 0; i < 1000; i++) { cv('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, sigBytes); cv('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, sigBytes); }
  const u1 = process.cpuUsage(t1);
  console.log(`full collector: ${((u.user + u.system) / 1000).toFixed(1)} us, bare x2 ${((u1.user + u1.system) / 1000).toFixed(1)} us`);
}
import { checkAgent, checkPayloadSignature, checkHeaderNonce } from './packages/sdk-verifier/src/pipeline/steps.js';
{
  const acc: Record<string, number> = {};
  const TICK = process.env.TICK === '1'; const tick = (k: string, t0: NodeJS.CpuUsage) => { if (!TICK) return t0; const u = process.cpuUsage(t0); acc[k] = (acc[k] ?? 0) + u.user + u.system; return process.cpuUsage(); };
  for (let round = 0; round < 6; round++) {
    const reqs = await prep(1000);
    for (const k of Object.keys(acc)) acc[k] = 0;
    const T0 = process.cpuUsage();
    for (const q of reqs) {
      let t = process.cpuUsage();
      const { payload: pl, raw, geoHeader } = parseMetricsRequest(q as never, r, false); t = tick('parse', t);
      let rec: any;
      const sig = await verifyHeaders(q as never, r, METRICS_COMPONENTS, METRICS_PARAMS, async (kid) => { rec = await checkAgent(options as never, pl.tpm_public_key_hash, pl.agent_name, kid); return pinned(rec); }, true); t = tick('headers', t);
      checkPayloadSignature(raw, pl, rec); t = tick('payloadSig', t);
      const nw = r.now(); checkTimes(r, nw.getTime(), pl.timestamp, sig); checkHeaderNonce(sig, pl); t = tick('times', t);
      const c = await nonces.consume(rec.keyid, pl.nonce); if (c !== 'ok') throw new Error(c); t = tick('nonce', t);
      checkGeo(options as never, r, nw, rec.agent_name, rec, pl, geoHeader); t = tick('geo', t);
    }
    const TT = process.cpuUsage(T0); acc.total = TT.user + TT.system;
    console.log(Object.entries(acc).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(' | '));
  }
}
await registry.close();
{
  const work = () => { let x = 0; for (let i = 0; i < 20; i++) x += JSON.stringify(JSON.parse(body)).length; return x; };
  for (let round = 0; round < 5; round++) {
    let t = process.cpuUsage();
    for (let i = 0; i < 1000; i++) cv('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, sigBytes);
    let u = process.cpuUsage(t); const bare = (u.user + u.system) / 1000;
    t = process.cpuUsage();
    for (let i = 0; i < 1000; i++) work();
    u = process.cpuUsage(t); const w = (u.user + u.system) / 1000;
    t = process.cpuUsage();
    for (let i = 0; i < 1000; i++) { work(); cv('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, sigBytes); }
    u = process.cpuUsage(t); const both = (u.user + u.system) / 1000;
    console.log(`verify ${bare.toFixed(1)} work ${w.toFixed(1)} interleaved ${both.toFixed(1)} → verify cost when interleaved ${(both - w).toFixed(1)}`);
  }
}
