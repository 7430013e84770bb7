/**
 * @geofence/verifier: in-process throughput of the full collector verification of `POST /metrics`
 * (SPEC §13) vs the bare `crypto.verify` calls it makes.
 *
 * Full path (`createCollectorVerifier(options).verify`): size/media-type checks, JSON.parse, schema (predicate compiled from the zod schema, zod fallback), Content-Digest (SHA-256),
 * Workload-Geo-ID parse, RFC 9421 verification (structured-header parsing, signature base, ECDSA P-256),
 * registry lookup (JSON-file registry, in-memory index), payload JCS + ECDSA P-256, timestamps,
 * nonce consume (memory store), geo policy, record sink.
 * Bare: the same two `crypto.verify` calls over precomputed inputs (payload JCS bytes and RFC 9421
 * signature base, the same byte lengths), with the very KeyObject the full path uses (`recordPublicKey` of
 * the registry record), ieee-p1363 signatures as on the wire.
 * Every full verification consumes a fresh nonce, so each round uses fresh pre-signed requests.
 * Throughput is per CPU second of this process (user + system, so GC threads count), so other load on the
 * machine distorts it less. Within a round the candidates run over the same requests in chunks of CHUNK,
 * interleaved with a rotating order; the ratio is the median of the per-round ratios (min/max printed too).
 * BENCH_ROUNDS sets the number of rounds (default 7).
 *
 * Run: npm run build -w packages/http-sig -w packages/protocol -w packages/tpm-wire -w packages/sdk-verifier &&
 *      node --import tsx bench/verify.bench.ts [--json[=DIR]]
 */
import { verify as cryptoVerify, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  contentDigest,
  createSignatureBase,
  createSigner,
  signRequest,
  verifyRequest,
} from '@geofence/http-sig';
import {
  createCollectorVerifier,
  JsonFileRegistry,
  keyidOfPublicKey,
  METRICS_SIGNATURE_COMPONENTS,
  MemoryNonceStore,
  payloadSigningInput,
  recordPublicKey,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  signPayload,
  type VerifierRequest,
  verifyPayloadSignature,
} from '@geofence/verifier';

// Collect garbage before each timed loop, so the garbage of preparing signed requests is not
// charged to whichever candidate happens to run when the collector kicks in.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const PER_ROUND = 1000;
const WARMUP_ROUNDS = 3;
/** Requests per interleaved chunk. */
const CHUNK = 20;

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keyid = keyidOfPublicKey(publicKey);
const signer = createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid });
const dir = mkdtempSync(join(tmpdir(), 'geofence-bench-'));
const registry = await JsonFileRegistry.open({ path: join(dir, 'agents.json'), watch: false });
await registry.put({
  agent_name: 'agent-001',
  keyid,
  alg: 'ecdsa-p256-sha256',
  app_public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  geo_policy: {
    allow: [{ region: 'US', state: 'California', city: 'Santa Clara' }],
    fences: [
      {
        type: 'Polygon',
        coordinates: [
          [
            [-122.1, 37.2],
            [-121.9, 37.2],
            [-121.9, 37.4],
            [-122.1, 37.4],
            [-122.1, 37.2],
          ],
        ],
      },
    ],
  },
  status: 'active',
});
const nonces = new MemoryNonceStore({ maxOutstanding: 1_000_000 });
let records = 0;
const options = { registry, nonces, onAccept: () => String(++records) };

interface Prepared {
  req: VerifierRequest;
  payloadInput: Uint8Array;
  payloadSig: Buffer;
  base: Buffer;
  headerSig: Buffer;
}

async function prepare(n: number): Promise<Prepared[]> {
  const out: Prepared[] = [];
  for (let i = 0; i < n; i++) {
    const { nonce } = await nonces.issue(keyid);
    const payload = await signPayload(
      {
        version: 1,
        agent_name: 'agent-001',
        tpm_public_key_hash: keyid,
        nonce,
        timestamp: new Date().toISOString(),
        metrics: { cpu_percent: 12.5 + i, mem_mb: 512, disk: { used: 1234567, free: 7654321 } },
        geographic_region: { region: 'US', state: 'California', city: 'Santa Clara' },
        location: { lat: 37.35, lon: -121.97, accuracy: 25, quality: 'GNSS' }, // inside Santa Clara
      },
      signer,
    );
    const body = JSON.stringify(payload);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-digest': contentDigest(body),
      'workload-geo-id': JSON.stringify({
        client_workload_id: 'agent-001',
        client_workload_location: { region: 'US', state: 'California', city: 'Santa Clara' },
        client_workload_location_type: 'geographic-region',
        client_workload_location_quality: 'GNSS',
        client_type: 'thick',
      }),
    };
    const created = Math.floor(Date.now() / 1000);
    const message = { method: 'POST', url: '/metrics', headers, body };
    const sig = await signRequest(message, {
      signer,
      components: METRICS_SIGNATURE_COMPONENTS,
      label: SIGNATURE_LABEL,
      tag: SIGNATURE_TAG,
      nonce,
      created,
      expires: created + 300,
    });
    Object.assign(headers, sig);
    out.push({
      req: { method: 'POST', url: '/metrics', headers, rawBody: Buffer.from(body) },
      payloadInput: payloadSigningInput(payload),
      payloadSig: Buffer.from(payload.signature, 'base64url'),
      base: Buffer.from(createSignatureBase(message, sig['signature-input'], SIGNATURE_LABEL), 'latin1'),
      headerSig: Buffer.from(sig.signature.slice(`${SIGNATURE_LABEL}=:`.length, -1), 'base64'),
    });
  }
  return out;
}

const record = await registry.getByKeyid(keyid);
if (!record) throw new Error('registry lost the agent');
/** The KeyObject the full path verifies with (cached per registry record): the bare side uses the same one. */
const key = recordPublicKey(record);

function bareOne(p: Prepared): void {
  const a = cryptoVerify('sha256', p.payloadInput, { key, dsaEncoding: 'ieee-p1363' }, p.payloadSig);
  const b = cryptoVerify('sha256', p.base, { key, dsaEncoding: 'ieee-p1363' }, p.headerSig);
  if (!a || !b) throw new Error('bare verify failed');
}

/** Built once, as a server builds it: options resolved and the geo policy compiled at construction. */
const collector = createCollectorVerifier(options);

async function fullOne(p: Prepared): Promise<void> {
  await collector.verify(p.req);
}

// Breakdown: the two expensive parts of the full path on their own, to show where the time goes.
const pinned = { key, alg: 'ecdsa-p256-sha256' as const };
const httpSigOptions = {
  keyLookup: async () => pinned,
  label: SIGNATURE_LABEL,
  tag: SIGNATURE_TAG,
  requiredComponents: METRICS_SIGNATURE_COMPONENTS,
  requiredParams: ['created', 'expires', 'keyid', 'alg', 'nonce', 'tag'] as const,
  clockSkewSeconds: Number.POSITIVE_INFINITY,
  checkContentDigest: false,
};
async function httpSigOne(p: Prepared): Promise<void> {
  await verifyRequest({ method: 'POST', url: '/metrics', headers: p.req.headers }, httpSigOptions);
}

function payloadOne(p: Prepared): void {
  const body = p.req.rawBody!;
  const payload = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  if (!verifyPayloadSignature(payload, key)) throw new Error('payload verify failed');
}

type Candidate = (p: Prepared) => unknown;
const candidates: Record<string, Candidate> = {
  bare: bareOne,
  full: fullOne,
  httpSig: httpSigOne,
  payload: payloadOne,
};
const names = Object.keys(candidates);

/**
 * One round: fresh signed requests (each full verification consumes its nonce), then the candidates run
 * over the same requests in small interleaved chunks, rotating the order per chunk, so every candidate sees
 * the same interference from other processes and the same cache position. Returns requests per CPU second
 * (user + system of this whole process, so garbage-collector threads are charged too) per candidate.
 */
async function round(n: number): Promise<Record<string, number>> {
  const batch = await prepare(n);
  gc(); // the garbage of signing is nobody's cost
  const cpu: Record<string, number> = Object.fromEntries(names.map((k) => [k, 0]));
  for (let at = 0, chunk = 0; at < batch.length; at += CHUNK, chunk++) {
    const slice = batch.slice(at, at + CHUNK);
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + chunk) % names.length]!;
      const run = candidates[name]!;
      const before = process.cpuUsage();
      for (const p of slice) await run(p);
      const used = process.cpuUsage(before);
      cpu[name]! += used.user + used.system;
    }
  }
  return Object.fromEntries(names.map((k) => [k, n / (cpu[k]! / 1e6)]));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

// Warm-up: the full path needs a few thousand requests before V8 has optimised all of it.
for (let w = 0; w < WARMUP_ROUNDS; w++) await round(PER_ROUND);
const rounds: Record<string, number>[] = [];
for (let r = 0; r < ROUNDS; r++) rounds.push(await round(PER_ROUND));
if (records !== PER_ROUND * (ROUNDS + WARMUP_ROUNDS))
  throw new Error(`expected every request accepted, got ${records}`);
const med = (k: string) => median(rounds.map((x) => x[k]!));
const f = med('full');
const b = med('bare');
const ratio = median(rounds.map((x) => x.full! / x.bare!));
const results = {
  'verifier.verifyMetrics_full': { value: f, unit: 'req/cpu-s' },
  'verifier.bare_crypto_verify_x2': { value: b, unit: 'req/cpu-s' },
  'verifier.verify_ratio': { value: ratio, unit: 'ratio' },
  'verifier.verify_ratio_min': { value: Math.min(...rounds.map((x) => x.full! / x.bare!)), unit: 'ratio' },
  'verifier.verify_ratio_max': { value: Math.max(...rounds.map((x) => x.full! / x.bare!)), unit: 'ratio' },
  'verifier.overhead_per_request': { value: 1e6 / f - 1e6 / b, unit: 'us' },
  // breakdown
  'verifier.part.http_sig_verifyRequest': { value: med('httpSig'), unit: 'req/cpu-s' },
  'verifier.part.payload_parse_jcs_verify': { value: med('payload'), unit: 'req/cpu-s' },
  'verifier.part.rest_of_pipeline': {
    value: 1e6 / f - 1e6 / med('httpSig') - 1e6 / med('payload'),
    unit: 'us',
  },
};
for (const [name, { value, unit }] of Object.entries(results)) {
  console.log(
    `${name}: ${unit === 'ratio' ? value.toFixed(3) : value.toFixed(unit === 'us' ? 1 : 0)} ${unit}`,
  );
}
// SPEC §13 asks 0.8; issue 13 item 5 raises the bar to 0.85.
console.log(`verifier.verify_ratio_target: 0.85 ${ratio >= 0.85 ? 'met' : 'MISSED'}`);
const jsonArg = process.argv.find((a) => a === '--json' || a.startsWith('--json='));
if (jsonArg !== undefined) {
  const out = jsonArg.includes('=') ? jsonArg.slice('--json='.length) : 'bench-results';
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'verify.json'),
    `${JSON.stringify({ bench: 'verify', node: process.version, results }, null, 2)}\n`,
  );
}
await registry.close();
rmSync(dir, { recursive: true, force: true });
