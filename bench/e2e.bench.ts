/**
 * End-to-end benchmark of the reference server (SPEC §13): autocannon against the collector over
 * HTTPS on loopback with keep-alive, using pre-issued nonces and pre-signed requests (software P-256
 * keys; the TPM is not the subject here), then the same through the gateway in policy-enforcement mode.
 * The collector and the gateway run as separate processes (`geofence collector|gateway`), so the
 * figures are those of one Node process each. Reports requests/s, p50/p99 latency and the ratio to
 * the in-process verification throughput of the same pipeline (`createCollectorVerifier(...).verify`, memory nonce store).
 *
 * Run: `npm run build && node --import tsx bench/e2e.bench.ts [--json out.json | --json=DIR] [--requests N]`
 * Note: autocannon does not verify server certificates (loopback only).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { contentDigest, createSigner, type Signer, signRequest } from '@geofence/http-sig';
import {
  createCollectorVerifier,
  keyidOfPublicKey,
  METRICS_SIGNATURE_COMPONENTS,
  MemoryNonceStore,
  type NonceResponse,
  PAYLOAD_VERSION,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  SqliteRegistry,
  signPayload,
} from '@geofence/verifier';
import autocannon from 'autocannon';
import { Agent, request } from 'undici';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const TOTAL = Number(arg('--requests') ?? 6000);
const AGENTS = 10;
const CONNECTIONS = 16;
const CLI = new URL('../apps/reference-server/dist/cli.js', import.meta.url).pathname;
const PLACE = { region: 'US', state: 'California', city: 'Santa Clara' };

interface SoftAgent {
  name: string;
  keyid: string;
  key: KeyObject;
  signer: Signer;
}

interface Prepared {
  body: string;
  headers: Record<string, string>;
}

function makeAgents(): SoftAgent[] {
  return Array.from({ length: AGENTS }, (_, i) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyid = keyidOfPublicKey(publicKey);
    return {
      name: `bench-agent-${i}`,
      keyid,
      key: publicKey,
      signer: createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid }),
    };
  });
}

async function prepare(a: SoftAgent, nonce: NonceResponse): Promise<Prepared> {
  const payload = await signPayload(
    {
      version: PAYLOAD_VERSION,
      agent_name: a.name,
      tpm_public_key_hash: a.keyid,
      nonce: nonce.nonce,
      timestamp: new Date().toISOString(),
      metrics: { cpu_percent: 12.5, memory_percent: 41.2, disk_usage_percent: 23.1 },
      geographic_region: PLACE,
    },
    a.signer,
  );
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-digest': contentDigest(Buffer.from(body), 'sha-256'),
    'workload-geo-id': JSON.stringify({
      client_workload_id: a.name,
      client_workload_location: PLACE,
      client_workload_location_type: 'geographic-region',
      client_workload_location_quality: 'static',
      client_type: 'thick',
    }),
  };
  const created = Math.floor(Date.now() / 1000);
  const sig = await signRequest(
    { method: 'POST', url: 'https://bench/metrics', headers, body },
    {
      signer: a.signer,
      components: METRICS_SIGNATURE_COMPONENTS,
      label: SIGNATURE_LABEL,
      tag: SIGNATURE_TAG,
      created,
      expires: created + 300,
      nonce: nonce.nonce,
    },
  );
  return { body, headers: { ...headers, ...sig } };
}

// SPEC §13 asks for the collector's figure at 1 core: services run pinned to CPU 0 and the load
// generator (this process) to the other CPUs, when taskset exists and there are ≥ 2 CPUs.
// BENCH_SERVICE_CPUS=none disables pinning; BENCH_SERVICE_CPUS=0,1 pins to a list.
const SERVICE_CPUS = (() => {
  const wanted = process.env.BENCH_SERVICE_CPUS ?? '0';
  if (wanted === 'none' || availableParallelism() < 2) return undefined;
  if (spawnSync('taskset', ['-V']).status !== 0) return undefined;
  const others = Array.from({ length: availableParallelism() }, (_, i) => i)
    .filter((c) => !wanted.split(',').includes(String(c)))
    .join(',');
  if (others) spawnSync('taskset', ['-p', '-c', others, String(process.pid)]);
  return wanted;
})();
console.log(`e2e.service_cpu_list: ${SERVICE_CPUS ?? 'all'} (taskset)`);

function startService(
  role: string,
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess }> {
  const [cmd, args] = SERVICE_CPUS
    ? ['taskset', ['-c', SERVICE_CPUS, process.execPath, CLI, role]]
    : [process.execPath, [CLI, role]];
  const child = spawn(cmd, args, {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      try {
        const j = JSON.parse(line) as { msg?: string; url?: string };
        if (j.msg?.endsWith('listening') && j.url) resolve({ url: j.url, child });
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
    setTimeout(() => reject(new Error(`${role} did not start`)), 20_000).unref();
  });
}

async function issueAll(
  base: string,
  agents: SoftAgent[],
  perAgent: number,
  ca: string,
): Promise<Prepared[]> {
  const client = new Agent({ connect: { ca }, connections: 8 });
  const out: Prepared[] = [];
  for (const a of agents) {
    const batch = await Promise.all(
      Array.from({ length: perAgent }, async () => {
        const r = await request(`${base}/nonce?public_key_hash=${a.keyid}`, { dispatcher: client });
        if (r.statusCode !== 200) throw new Error(`nonce: ${r.statusCode} ${await r.body.text()}`);
        return prepare(a, (await r.body.json()) as NonceResponse);
      }),
    );
    out.push(...batch);
  }
  await client.close();
  // Interleave agents so the per-keyid work is spread like real traffic.
  return out.sort(() => Math.random() - 0.5);
}

async function cannon(
  url: string,
  reqs: Prepared[],
): Promise<{ rps: number; p50: number; p99: number; ok: number; non2xx: number }> {
  let i = 0;
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    amount: reqs.length,
    requests: [
      {
        method: 'POST',
        path: '/metrics',
        setupRequest: (req) => {
          const r = reqs[i++ % reqs.length] as Prepared;
          return { ...req, method: 'POST', path: '/metrics', headers: r.headers, body: r.body };
        },
      },
    ],
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    non2xx: result.non2xx,
  };
}

async function inProcess(agents: SoftAgent[], n: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'gf-bench-inproc-'));
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  for (const a of agents) await register(registry, a);
  const nonces = new MemoryNonceStore({ maxOutstanding: 100_000 });
  const reqs: Prepared[] = [];
  for (let k = 0; k < n; k++) {
    const a = agents[k % agents.length] as SoftAgent;
    const issued = await nonces.issue(a.keyid);
    reqs.push(
      await prepare(a, {
        nonce: issued.nonce,
        expires_at: issued.expiresAt.toISOString(),
        expires_in: issued.expiresIn,
      }),
    );
  }
  const collector = createCollectorVerifier({ registry, nonces });
  const t0 = process.hrtime.bigint();
  let accepted = 0;
  for (const r of reqs) {
    await collector.verify({
      method: 'POST',
      url: '/metrics',
      headers: r.headers,
      rawBody: Buffer.from(r.body),
    });
    accepted++;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await registry.close();
  return accepted / secs;
}

async function register(registry: SqliteRegistry, a: SoftAgent): Promise<void> {
  await registry.put({
    agent_name: a.name,
    keyid: a.keyid,
    alg: 'ecdsa-p256-sha256',
    app_public_key_pem: a.key.export({ type: 'spki', format: 'pem' }).toString(),
    geo_policy: { allow: [PLACE] },
    status: 'active',
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gf-bench-e2e-'));
  const agents = makeAgents();
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  for (const a of agents) await register(registry, a);
  await registry.close();
  const env = {
    GEOFENCE_DATA_DIR: dir,
    PORT: '0',
    RATE_LIMIT_ENABLED: 'false',
    NONCE_MAX_OUTSTANDING: '1024',
    GEOFENCE_ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef',
  };
  const children: ChildProcess[] = [];
  const stop = () => {
    for (const c of children) c.kill('SIGTERM');
  };
  process.on('exit', stop);
  try {
    const { ensureDemoPki } = await import('../apps/reference-server/dist/index.js');
    const pki = await ensureDemoPki(dir);
    const collector = await startService('collector', env);
    children.push(collector.child);
    const gateway = await startService('gateway', {
      ...env,
      GATEWAY_POLICY_ENFORCEMENT: 'true',
      COLLECTOR_URL: collector.url,
    });
    children.push(gateway.child);
    const perAgent = Math.min(1024, Math.ceil(TOTAL / AGENTS));

    const inproc = await inProcess(agents, Math.min(TOTAL, 3000));
    const direct = await cannon(collector.url, await issueAll(collector.url, agents, perAgent, pki.ca));
    const viaGw = await cannon(gateway.url, await issueAll(collector.url, agents, perAgent, pki.ca));

    const lines = [
      `e2e.inprocess_verify: ${inproc.toFixed(0)} req/s`,
      `e2e.collector_https: ${direct.rps.toFixed(0)} req/s`,
      `e2e.collector_https_p50: ${direct.p50} ms`,
      `e2e.collector_https_p99: ${direct.p99} ms`,
      `e2e.collector_https_accepted: ${direct.ok} of ${direct.ok + direct.non2xx}`,
      `e2e.collector_vs_inprocess: ${(direct.rps / inproc).toFixed(2)} ratio`,
      `e2e.gateway_enforcement_https: ${viaGw.rps.toFixed(0)} req/s`,
      `e2e.gateway_enforcement_p50: ${viaGw.p50} ms`,
      `e2e.gateway_enforcement_p99: ${viaGw.p99} ms`,
      `e2e.gateway_enforcement_accepted: ${viaGw.ok} of ${viaGw.ok + viaGw.non2xx}`,
      `e2e.gateway_vs_inprocess: ${(viaGw.rps / inproc).toFixed(2)} ratio`,
    ];
    for (const l of lines) process.stdout.write(`${l}\n`);
    const json = arg('--json');
    if (json)
      writeFileSync(json, JSON.stringify({ inproc, direct, viaGw, connections: CONNECTIONS }, null, 2));
  } finally {
    stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
