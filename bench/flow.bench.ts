/**
 * Full-flow benchmark (issue 13): N concurrent software agents (distinct P-256 keys registered in the
 * collector's SQLite registry), each a closed loop of signed `GET /nonce` → build and sign the payload
 * (JCS payload signature + RFC 9421 headers) → `POST /metrics`, over HTTPS with certificate
 * verification (undici Agent per agent, demo CA, keep-alive), for a fixed window after a warm-up.
 * The collector and the enforcing gateway (`GATEWAY_POLICY_ENFORCEMENT=true`) run as separate
 * processes (`geofence collector|gateway` from the TypeScript sources via tsx, as the tests'
 * `spawnService` does; `BENCH_SERVICES=dist` runs the built CLI instead); rate limits are off. Two scenarios: direct to the collector, and through the
 * enforcing gateway (both requests of a flow go to the gateway, which forwards them to the collector).
 *
 * Per scenario: flows/s, p50/p99 latency of each request and of the whole flow (nonce request start →
 * metrics answer, signing included), CPU ms per flow of each service process (utime + stime of
 * /proc/<pid>/stat, all threads, before/after the measured window), CPU ms per flow of this process
 * (the agents: signing, TLS, HTTP), and the bare crypto of a flow measured in the same run (the three
 * ECDSA P-256 verifications a flow needs — nonce request signature, metrics request signature,
 * payload signature — as `crypto.verify` calls over inputs of the same sizes, in this process) with
 * the ratio service-CPU-per-flow / bare-crypto-per-flow.
 *
 * Services log at LOG_LEVEL (default `info`: one line per request) to a file in the data directory.
 * The figures are those of whatever else runs on the machine too: CPU per flow is less disturbed by
 * other load than flows/s and latency.
 *
 * Run: node --import tsx bench/flow.bench.ts [--agents N] [--seconds S] [--warmup S]
 *      [--scenarios direct,gateway] [--rounds R] [--json[=DIR] | --json DIR]
 *      (`npm run bench -- --json=DIR` passes `--json=DIR` through scripts/bench.mjs)
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSignatureBase } from '@geofence/http-sig';
import {
  type MetricsPayload,
  type NonceResponse,
  payloadSigningInput,
  SIGNATURE_LABEL,
  SqliteRegistry,
} from '@geofence/verifier';
import { Agent, request } from 'undici';
import { buildSigned } from '../apps/reference-server/src/demo/raw.js';
import { ensureDemoPki } from '../apps/reference-server/src/tls.js';
import {
  register,
  SANTA_CLARA,
  type SoftAgent,
  signedNonceHeaders,
  softAgent,
} from '../apps/reference-server/test/helpers/soft-agent.js';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const a = args[i] as string;
  if (a.includes('=')) return a.slice(name.length + 1);
  const next = args[i + 1];
  return next !== undefined && !next.startsWith('--') ? next : '';
};
const AGENTS = Number(arg('--agents') || 4);
const SECONDS = Number(arg('--seconds') || 10);
const WARMUP = Number(arg('--warmup') || 2);
const SCENARIOS = (arg('--scenarios') || 'direct,gateway').split(',');
/** Rounds of all scenarios (interleaved); with more than one, medians and min/max are printed. */
const ROUNDS = Number(arg('--rounds') || 1);
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';
/** `BENCH_SERVICES=dist` runs the built CLI (needs `npm run build`) instead of the sources via tsx. */
const FROM_DIST = process.env.BENCH_SERVICES === 'dist';
const CLI = fileURLToPath(
  new URL(`../apps/reference-server/${FROM_DIST ? 'dist/cli.js' : 'src/cli.ts'}`, import.meta.url),
);
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

interface Service {
  role: string;
  url: string;
  child: ChildProcess;
}

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/**
 * Starts `geofence <role>` on a free port, logging to `<dir>/<role>.log`; resolves once it accepts
 * connections (whatever LOG_LEVEL, so no reliance on the `listening` line).
 */
async function startService(dir: string, role: string, env: Record<string, string>): Promise<Service> {
  const logPath = join(dir, `${role}.log`);
  const port = await freePort();
  const fd = openSync(logPath, 'w');
  const node = FROM_DIST ? [CLI, role] : ['--import', 'tsx', CLI, role];
  const child = spawn(process.execPath, node, {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL, ...env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `${role} exited with ${code ?? signal}`;
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${exited}: ${readFileSync(logPath, 'utf8')}`);
    if (await accepts(port)) return { role, url: `https://127.0.0.1:${port}`, child };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`${role} did not start: ${readFileSync(logPath, 'utf8')}`);
}

/** utime + stime of `pid` (all threads) in ms, from /proc/<pid>/stat. */
function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

class Samples {
  private buf = new Float64Array(1 << 16);
  n = 0;
  add(v: number): void {
    if (this.n === this.buf.length) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = v;
  }
  sorted(): Float64Array {
    return this.buf.slice(0, this.n).sort();
  }
}

/** Inputs of the three verifications of one flow, captured from a real signed flow. */
interface BareInputs {
  key: KeyObject;
  nonceBase: Buffer;
  nonceSig: Buffer;
  metricsBase: Buffer;
  metricsSig: Buffer;
  payloadInput: Uint8Array;
  payloadSig: Buffer;
}

const sigBytes = (header: string) => Buffer.from(header.slice(`${SIGNATURE_LABEL}=:`.length, -1), 'base64');

interface ScenarioResult {
  scenario: string;
  seconds: number;
  flows: number;
  errors: number;
  flowsPerSecond: number;
  latencyMs: Record<'nonce' | 'metrics' | 'flow', { p50: number; p99: number }>;
  cpuMsPerFlow: Record<string, number>;
  clientCpuMsPerFlow: number;
}

async function runScenario(
  scenario: string,
  base: string,
  agents: SoftAgent[],
  ca: string,
  services: Service[],
  capture: (b: BareInputs) => void,
): Promise<ScenarioResult> {
  const lat = { nonce: new Samples(), metrics: new Samples(), flow: new Samples() };
  let measuring = false;
  let stopping = false;
  let flows = 0;
  let errors = 0;
  let captured = false;
  const keys = new Map(agents.map((a) => [a.keyid, a.publicKey]));

  const loop = async (a: SoftAgent): Promise<void> => {
    const dispatcher = new Agent({
      connect: { ca, rejectUnauthorized: true },
      connections: 1,
      keepAliveTimeout: 30_000,
    });
    const target = `${base}/nonce?public_key_hash=${a.keyid}`;
    try {
      while (!stopping) {
        const t0 = performance.now();
        const nonceHeaders = await signedNonceHeaders(a, target);
        const nr = await request(target, { headers: nonceHeaders, dispatcher });
        const nonceText = await nr.body.text();
        const t1 = performance.now();
        if (nr.statusCode !== 200) {
          errors++;
          if (errors > 50) throw new Error(`nonce ${nr.statusCode}: ${nonceText}`);
          continue;
        }
        const nonce = JSON.parse(nonceText) as NonceResponse;
        const signed = await buildSigned({
          agentName: a.name,
          keyid: a.keyid,
          signer: a.signer,
          nonce,
          metrics: { cpu_percent: 12.5, memory_percent: 41.2, disk_usage_percent: 23.1 },
          place: SANTA_CLARA,
          now: new Date(),
          validitySeconds: 60,
        });
        const t2 = performance.now();
        const mr = await request(`${base}/metrics`, {
          method: 'POST',
          headers: signed.headers,
          body: signed.body,
          dispatcher,
        });
        const metricsText = await mr.body.text();
        const t3 = performance.now();
        if (mr.statusCode !== 200) {
          errors++;
          if (errors > 50) throw new Error(`metrics ${mr.statusCode}: ${metricsText}`);
          continue;
        }
        if (!captured) {
          captured = true;
          const payload = JSON.parse(signed.body.toString('utf8')) as MetricsPayload;
          capture({
            key: keys.get(a.keyid) as KeyObject,
            nonceBase: Buffer.from(
              createSignatureBase(
                { method: 'GET', url: target, headers: {} },
                nonceHeaders['signature-input'] as string,
                SIGNATURE_LABEL,
              ),
              'latin1',
            ),
            nonceSig: sigBytes(nonceHeaders.signature as string),
            metricsBase: Buffer.from(
              createSignatureBase(
                { method: 'POST', url: `${base}/metrics`, headers: signed.headers, body: signed.body },
                signed.headers['signature-input'] as string,
                SIGNATURE_LABEL,
              ),
              'latin1',
            ),
            metricsSig: sigBytes(signed.headers.signature as string),
            payloadInput: payloadSigningInput(payload),
            payloadSig: Buffer.from(payload.signature, 'base64url'),
          });
        }
        if (measuring) {
          flows++;
          lat.nonce.add(t1 - t0);
          lat.metrics.add(t3 - t2);
          lat.flow.add(t3 - t0);
        }
      }
    } finally {
      await dispatcher.close();
    }
  };

  const running = agents.map(loop);
  const failed = Promise.race(running).then(() => {
    if (!stopping) throw new Error('an agent loop ended early');
  });
  const sleep = (s: number) => Promise.race([new Promise((r) => setTimeout(r, s * 1000)), failed]);
  await sleep(WARMUP);

  const cpu0 = services.map((s) => procCpuMs(s.child.pid as number));
  const client0 = process.cpuUsage();
  const w0 = performance.now();
  measuring = true;
  await sleep(SECONDS);
  measuring = false;
  const secs = (performance.now() - w0) / 1000;
  const client = process.cpuUsage(client0);
  const cpu1 = services.map((s) => procCpuMs(s.child.pid as number));
  const counted = flows;
  stopping = true;
  await Promise.all(running);

  const cpuMsPerFlow: Record<string, number> = {};
  services.forEach((s, i) => {
    cpuMsPerFlow[s.role] = ((cpu1[i] as number) - (cpu0[i] as number)) / counted;
  });
  const q = (s: Samples) => {
    const sorted = s.sorted();
    return { p50: pct(sorted, 50), p99: pct(sorted, 99) };
  };
  return {
    scenario,
    seconds: secs,
    flows: counted,
    errors,
    flowsPerSecond: counted / secs,
    latencyMs: { nonce: q(lat.nonce), metrics: q(lat.metrics), flow: q(lat.flow) },
    cpuMsPerFlow,
    clientCpuMsPerFlow: (client.user + client.system) / 1000 / counted,
  };
}

/** ms of the three `crypto.verify` calls of one flow (median of rounds). */
function bareCryptoMsPerFlow(b: BareInputs): number {
  const opts = { key: b.key, dsaEncoding: 'ieee-p1363' as const };
  const one = () => {
    const ok =
      cryptoVerify('sha256', b.nonceBase, opts, b.nonceSig) &&
      cryptoVerify('sha256', b.metricsBase, opts, b.metricsSig) &&
      cryptoVerify('sha256', b.payloadInput, opts, b.payloadSig);
    if (!ok) throw new Error('bare verify failed: the captured inputs do not match the signatures');
  };
  for (let i = 0; i < 200; i++) one();
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const n = 400;
    const t0 = process.cpuUsage();
    for (let i = 0; i < n; i++) one();
    const d = process.cpuUsage(t0);
    rounds.push((d.user + d.system) / 1000 / n);
  }
  rounds.sort((x, y) => x - y);
  return rounds[2] as number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gf-bench-flow-'));
  const agents = Array.from({ length: AGENTS }, (_, i) => softAgent(`flow-agent-${i}`));
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  for (const a of agents) await register(registry, a);
  await registry.close();
  const pki = await ensureDemoPki(dir);
  const env = {
    GEOFENCE_DATA_DIR: dir,
    RATE_LIMIT_ENABLED: 'false',
    GEOFENCE_ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef',
  };
  const children: ChildProcess[] = [];
  const stop = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  };
  process.on('exit', stop);
  const results: ScenarioResult[] = [];
  let bare: BareInputs | undefined;
  try {
    const collector = await startService(dir, 'collector', env);
    children.push(collector.child);
    const gateway = SCENARIOS.includes('gateway')
      ? await startService(dir, 'gateway', {
          ...env,
          GATEWAY_POLICY_ENFORCEMENT: 'true',
          COLLECTOR_URL: collector.url,
        })
      : undefined;
    if (gateway) children.push(gateway.child);
    const services = [collector, ...(gateway ? [gateway] : [])];
    for (let round = 0; round < ROUNDS; round++) {
      for (const scenario of SCENARIOS) {
        const base =
          scenario === 'gateway' ? gateway?.url : scenario === 'direct' ? collector.url : undefined;
        if (!base) throw new Error(`unknown scenario ${scenario} (direct, gateway)`);
        results.push(
          await runScenario(scenario, base, agents, pki.ca, services, (b) => {
            bare ??= b;
          }),
        );
      }
    }
  } finally {
    stop();
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
  }
  if (!bare) throw new Error('no flow completed');
  const bareMs = bareCryptoMsPerFlow(bare);

  const fmt = (v: number, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
  const lines = [
    `flow.agents: ${AGENTS} agents`,
    `flow.window: ${SECONDS} s (after ${WARMUP} s warm-up)`,
    `flow.bare_crypto_per_flow: ${fmt(bareMs)} ms (3 × ECDSA P-256 verify, in-process)`,
  ];
  const median = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    const m = v.length >> 1;
    return v.length % 2 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
  };
  /** `name: median unit`, and with several rounds `name_min` / `name_max` too. */
  const stat = (name: string, xs: number[], unit: string, d = 3, spread = false) => {
    lines.push(`${name}: ${fmt(median(xs), d)} ${unit}`);
    if (spread && ROUNDS > 1)
      lines.push(
        `${name}_min: ${fmt(Math.min(...xs), d)} ${unit}`,
        `${name}_max: ${fmt(Math.max(...xs), d)} ${unit}`,
      );
  };
  if (ROUNDS > 1) lines.push(`flow.rounds: ${ROUNDS} rounds (figures are medians over rounds)`);
  for (const scenario of SCENARIOS) {
    const rs = results.filter((r) => r.scenario === scenario);
    const p = `flow.${scenario}`;
    stat(
      `${p}.flows_per_s`,
      rs.map((r) => r.flowsPerSecond),
      'flows/s',
      0,
      true,
    );
    lines.push(
      `${p}.flows: ${rs.reduce((n, r) => n + r.flows, 0)} flows (${rs.reduce((n, r) => n + r.errors, 0)} errors)`,
    );
    for (const req of ['nonce', 'metrics', 'flow'] as const)
      for (const q of ['p50', 'p99'] as const)
        stat(
          `${p}.${req}_${q}`,
          rs.map((r) => r.latencyMs[req][q]),
          'ms',
        );
    for (const role of Object.keys(rs[0]?.cpuMsPerFlow ?? {})) {
      // The gateway is idle in the direct scenario: its (near-zero) figure is noise, not per-flow cost.
      if (scenario === 'direct' && role === 'gateway') continue;
      const ms = rs.map((r) => r.cpuMsPerFlow[role] as number);
      stat(`${p}.${role}_cpu_per_flow`, ms, 'ms', 3, true);
      stat(
        `${p}.${role}_cpu_vs_bare_crypto`,
        ms.map((m) => m / bareMs),
        'ratio',
        2,
        true,
      );
    }
    stat(
      `${p}.client_cpu_per_flow`,
      rs.map((r) => r.clientCpuMsPerFlow),
      'ms',
      3,
      true,
    );
  }
  for (const l of lines) process.stdout.write(`${l}\n`);

  const json = arg('--json');
  if (json !== undefined) {
    const out = json || 'bench-results';
    mkdirSync(out, { recursive: true });
    writeFileSync(
      join(out, 'flow.json'),
      `${JSON.stringify(
        {
          bench: 'flow',
          node: process.version,
          agents: AGENTS,
          seconds: SECONDS,
          warmup: WARMUP,
          rounds: ROUNDS,
          logLevel: LOG_LEVEL,
          clockTicks: CLK_TCK,
          bareCryptoMsPerFlow: bareMs,
          results,
        },
        null,
        2,
      )}\n`,
    );
  }
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
