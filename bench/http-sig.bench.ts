/**
 * @geofence/http-sig verification throughput vs the bare crypto it performs.
 *
 * Request: SPEC §6.3 profile — ECDSA P-256, components ("@method" "@path" "content-type" "content-digest"
 * "workload-geo-id"), created/expires/keyid/alg/nonce/tag. Figures:
 *   - verifyRequest (header parsing + checks + signature base + crypto.verify), no body digest;
 *   - bare crypto.verify over the identical signature base bytes with the same KeyObject;
 *   - verifyRequest with the body (Content-Digest recomputed) vs bare crypto.verify + SHA-256 of the body.
 * Throughput is per CPU-second of this process, measured in small interleaved batches to damp interference
 * from other processes. BENCH_MS sets the measuring time (default 6000 ms).
 *
 * Run: npm run build -w packages/http-sig && node --import tsx bench/http-sig.bench.ts [--json[=DIR]]
 */
import { createHash, verify as cryptoVerify, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  contentDigest,
  createSignatureBase,
  createSigner,
  type HttpMessage,
  signRequest,
  verifyRequest,
} from '@geofence/http-sig';

const DURATION_MS = Number(process.env.BENCH_MS ?? 6000);
const BATCH = 25;

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const body = new TextEncoder().encode(
  JSON.stringify({
    version: 1,
    agent_name: 'agent-001',
    tpm_public_key_hash: 'a'.repeat(64),
    nonce: 'n'.repeat(43),
    timestamp: '2026-11-28T21:00:00.000Z',
    metrics: { cpu: 0.42, mem: 0.63, disk: { used: 1234567, free: 7654321 } },
    geographic_region: { region: 'US', state: 'California', city: 'Santa Clara' },
    algorithm: 'ecdsa-p256-sha256',
    signature: 's'.repeat(86),
  }),
);
const created = Math.floor(Date.now() / 1000);
const headers: Record<string, string> = {
  'content-type': 'application/json',
  'content-digest': contentDigest(body),
  'workload-geo-id': 'US/California/Santa Clara',
};
const message: HttpMessage = { method: 'POST', url: 'https://collector.example:8443/metrics', headers };
const sig = await signRequest(message, {
  signer: createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid: 'a'.repeat(64) }),
  components: ['@method', '@path', 'content-type', 'content-digest', 'workload-geo-id'],
  label: 'geo',
  created,
  expires: created + 300,
  nonce: 'n'.repeat(43),
  tag: 'geofence/v1',
});
headers['signature-input'] = sig['signature-input'];
headers.signature = sig.signature;
const withBody: HttpMessage = { ...message, body };

const base = Buffer.from(createSignatureBase(message, sig['signature-input'], 'geo'), 'latin1');
const signatureBytes = Buffer.from(sig.signature.slice('geo=:'.length, -1), 'base64');
const options = {
  keyLookup: async () => publicKey,
  label: 'geo',
  tag: 'geofence/v1',
  requiredComponents: ['@method', '@path', 'content-type', 'content-digest', 'workload-geo-id'],
  requiredParams: ['created', 'expires', 'keyid', 'alg', 'nonce', 'tag'] as const,
  algorithms: ['ecdsa-p256-sha256'] as const,
  maxAgeSeconds: 300,
};

function bareVerify(): boolean {
  return cryptoVerify('sha256', base, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signatureBytes);
}

function bareVerifyAndDigest(): boolean {
  createHash('sha256').update(body).digest();
  return bareVerify();
}

/**
 * Runs the candidates in small interleaved batches for DURATION_MS and returns, per candidate, operations per
 * CPU-second of this process (user + system). Everything measured runs synchronously on this thread, so CPU time
 * is its cost; fine-grained interleaving makes all candidates see the same interference from other processes.
 */
async function measure(
  candidates: Record<string, () => unknown>,
  durationMs = DURATION_MS,
): Promise<Record<string, number>> {
  const names = Object.keys(candidates);
  const cpu = Object.fromEntries(names.map((n) => [n, 0])) as Record<string, number>;
  const ops = Object.fromEntries(names.map((n) => [n, 0])) as Record<string, number>;
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    for (const name of names) {
      const op = candidates[name]!;
      const before = process.cpuUsage();
      for (let i = 0; i < BATCH; i++) await op();
      const used = process.cpuUsage(before);
      cpu[name]! += used.user + used.system;
      ops[name]! += BATCH;
    }
  }
  return Object.fromEntries(names.map((n) => [n, ops[n]! / (cpu[n]! / 1e6)]));
}

// Sanity: every candidate must succeed before being timed.
if (!bareVerify()) throw new Error('bare verify failed');
await verifyRequest(message, options);
await verifyRequest(withBody, options);

const candidates: Record<string, () => unknown> = {
  verifyRequest: () => verifyRequest(message, options),
  bare: bareVerify,
  verifyRequestBody: () => verifyRequest(withBody, options),
  bareDigest: bareVerifyAndDigest,
};
await measure(candidates, 1000); // warm-up: JIT, key caches
const m = await measure(candidates);

const signer = createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid: 'k' });
const { sign: signOps } = (await measure(
  {
    sign: () =>
      signRequest(message, {
        signer,
        components: ['@method', '@path', 'content-type', 'content-digest', 'workload-geo-id'],
        label: 'geo',
        created,
        expires: created + 300,
        nonce: 'n'.repeat(43),
        tag: 'geofence/v1',
      }),
  },
  2000,
)) as { sign: number };

const results = {
  'http-sig.verifyRequest': { value: m.verifyRequest!, unit: 'ops/cpu-s' },
  'http-sig.bare_crypto_verify': { value: m.bare!, unit: 'ops/cpu-s' },
  'http-sig.verify_ratio': { value: m.verifyRequest! / m.bare!, unit: 'ratio' },
  'http-sig.verifyRequest_with_body_digest': { value: m.verifyRequestBody!, unit: 'ops/cpu-s' },
  'http-sig.bare_crypto_verify_plus_sha256': { value: m.bareDigest!, unit: 'ops/cpu-s' },
  'http-sig.verify_with_digest_ratio': { value: m.verifyRequestBody! / m.bareDigest!, unit: 'ratio' },
  'http-sig.signRequest_software_p256': { value: signOps, unit: 'ops/cpu-s' },
  'http-sig.overhead_per_verify': { value: 1e6 / m.verifyRequest! - 1e6 / m.bare!, unit: 'us' },
};
for (const [name, { value, unit }] of Object.entries(results)) {
  console.log(
    `${name}: ${unit === 'ratio' ? value.toFixed(3) : value.toFixed(unit === 'us' ? 2 : 0)} ${unit}`,
  );
}

const jsonArg = process.argv.find((a) => a === '--json' || a.startsWith('--json='));
if (jsonArg !== undefined) {
  const dir = jsonArg.includes('=') ? jsonArg.slice('--json='.length) : 'bench-results';
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'http-sig.json'),
    `${JSON.stringify({ bench: 'http-sig', node: process.version, results }, null, 2)}\n`,
  );
}
