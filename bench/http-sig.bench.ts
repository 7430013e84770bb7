/**
 * @geofence/http-sig verification throughput vs the bare crypto it performs.
 *
 * Request: SPEC §6.3 profile — ECDSA P-256, components ("@method" "@path" "content-type" "content-digest"
 * "workload-geo-id"), created/expires/keyid/alg/nonce/tag. Figures:
 *   - verifyRequest (header parsing + checks + signature base + crypto.verify), no body digest;
 *   - bare crypto.verify over the identical signature base bytes with the same KeyObject;
 *   - verifyRequest with the body (Content-Digest recomputed) vs bare crypto.verify + SHA-256 of the body.
 * Throughput is per CPU-second of this process; rounds alternate between the candidates and the median is
 * reported, to damp noise from other processes.
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

const ROUNDS = 7;
const ROUND_MS = 700;

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
 * Runs `op` back to back for ROUND_MS of wall time and returns operations per CPU-second of this process
 * (user + system). Everything measured is synchronous on this thread, so CPU time is the cost; it is far less
 * sensitive than wall time to other processes competing for the two cores.
 */
async function round(op: () => unknown): Promise<number> {
  let n = 0;
  const startCpu = process.cpuUsage();
  const end = process.hrtime.bigint() + BigInt(ROUND_MS) * 1_000_000n;
  while (process.hrtime.bigint() < end) {
    for (let i = 0; i < 50; i++) await op();
    n += 50;
  }
  const cpu = process.cpuUsage(startCpu);
  return n / ((cpu.user + cpu.system) / 1e6);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
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
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(candidates).map((k) => [k, []]));
for (const op of Object.values(candidates)) await round(op); // warm-up (JIT, key caches)
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, op] of Object.entries(candidates)) samples[name]!.push(await round(op));
}
const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])) as Record<
  string,
  number
>;

const signer = createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid: 'k' });
const signOps = await round(() =>
  signRequest(message, {
    signer,
    components: ['@method', '@path', 'content-type', 'content-digest', 'workload-geo-id'],
    label: 'geo',
    created,
    expires: created + 300,
    nonce: 'n'.repeat(43),
    tag: 'geofence/v1',
  }),
);

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
