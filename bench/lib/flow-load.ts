/**
 * The full-flow load of the benchmarks (bench/flow.bench.ts, bench/fleet.bench.ts): services started
 * as separate processes, N software agents each looping signed `GET /nonce` → sign → `POST /metrics`
 * over HTTPS with certificate verification, CPU per flow of each service from /proc (a clustered
 * service: its primary and its workers), and the bare crypto of a flow measured in this process.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSignatureBase } from '@geofence/http-sig';
import {
  type MetricsPayload,
  type NonceBatchResponse,
  type NonceResponse,
  payloadSigningInput,
  SIGNATURE_LABEL,
} from '@geofence/verifier';
import { Agent, request } from 'undici';
import { buildSigned } from '../../apps/reference-server/src/demo/raw.js';
import {
  SANTA_CLARA,
  type SoftAgent,
  signedNonceHeaders,
} from '../../apps/reference-server/test/helpers/soft-agent.js';

/** Log level of the services (`BENCH_LOG_LEVEL`, default `info`: one line per request). */
export const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';
/** `BENCH_SERVICES=dist` runs the built CLI (needs `npm run build`) instead of the sources via tsx. */
export const FROM_DIST = process.env.BENCH_SERVICES === 'dist';
const CLI = fileURLToPath(
  new URL(`../../apps/reference-server/${FROM_DIST ? 'dist/cli.js' : 'src/cli.ts'}`, import.meta.url),
);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Clock ticks per second of /proc/<pid>/stat times. */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** The command-line value of `--name` (`--name v` or `--name=v`; empty when given without one). */
export function argOf(args: readonly string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const a = args[i] as string;
  if (a.includes('=')) return a.slice(name.length + 1);
  const next = args[i + 1];
  return next !== undefined && !next.startsWith('--') ? next : '';
}

/** Median of `xs`. */
export function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
}

/** `v` with `d` decimals, `n/a` when not finite. */
export const fmt = (v: number, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');

/** A service process started by {@link startService}. */
export interface Service {
  role: string;
  url: string;
  child: ChildProcess;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
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
export async function startService(
  dir: string,
  role: string,
  env: Record<string, string>,
  logName = role,
): Promise<Service> {
  return startProcess(dir, role, FROM_DIST ? [CLI, role] : ['--import', 'tsx', CLI, role], env, logName);
}

/**
 * Starts the floor service (bench/lib/floor-service.mjs: bare `node:https`, the three verifications, a
 * durable append per record, no @geofence code) with the demo PKI's server certificate.
 */
export async function startFloorService(dir: string, pki: { cert: string; key: string }): Promise<Service> {
  const script = fileURLToPath(new URL('./floor-service.mjs', import.meta.url));
  return startProcess(dir, 'floor', [script, pki.cert, pki.key, join(dir, 'floor-records.jsonl')], {});
}

async function startProcess(
  dir: string,
  role: string,
  args: string[],
  env: Record<string, string>,
  logName = role,
): Promise<Service> {
  const logPath = join(dir, `${logName}.log`);
  const port = await freePort();
  const fd = openSync(logPath, 'w');
  // BENCH_NODE_ARGS: extra node flags for the services only, e.g. `--cpu-prof --cpu-prof-dir=DIR`
  // (which NODE_OPTIONS refuses) to profile them under this load.
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const node = [...extra, ...args];
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

/** Fields of /proc/<pid>/stat after the `(comm)`: index 0 is field 3 (state). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * utime + stime in ms of `pid` (all threads) and of its child processes (the workers of a clustered
 * service; `node:cluster` forks them directly), from /proc/<pid>/stat (fields 14 and 15).
 */
export function procCpuMs(pid: number): number {
  let ms = 0;
  for (const p of [pid, ...childPids(pid)]) {
    try {
      const f = statFields(p);
      ms += ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
    } catch {
      // a child that exited meanwhile
    }
  }
  return ms;
}

/** Direct child processes of `pid` (field 4 of /proc/<child>/stat is the parent). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === pid) continue;
    try {
      if (Number(statFields(Number(d))[1]) === pid) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
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
export interface BareInputs {
  key: KeyObject;
  nonceBase: Buffer;
  nonceSig: Buffer;
  metricsBase: Buffer;
  metricsSig: Buffer;
  payloadInput: Uint8Array;
  payloadSig: Buffer;
}

const sigBytes = (header: string) => Buffer.from(header.slice(`${SIGNATURE_LABEL}=:`.length, -1), 'base64');

/** Figures of one measured window. */
export interface ScenarioResult {
  scenario: string;
  seconds: number;
  flows: number;
  errors: number;
  flowsPerSecond: number;
  latencyMs: Record<'nonce' | 'metrics' | 'flow', { p50: number; p99: number }>;
  cpuMsPerFlow: Record<string, number>;
  clientCpuMsPerFlow: number;
}

/**
 * Runs the agents' closed loops against `base` for `window.warmup` then `window.seconds` seconds and
 * measures the second part; `capture` receives the inputs of one real flow (for the bare crypto).
 */
export async function runScenario(
  scenario: string,
  base: string,
  agents: SoftAgent[],
  ca: string,
  services: Service[],
  capture: (b: BareInputs) => void,
  window: { warmup: number; seconds: number; nonceBatch?: number },
): Promise<ScenarioResult> {
  // n > 1: one signed `GET /nonce?…&count=n` serves the next n flows of an agent (SPEC §16).
  const batch = window.nonceBatch ?? 1;
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
    const target = `${base}/nonce?public_key_hash=${a.keyid}${batch > 1 ? `&count=${batch}` : ''}`;
    const pooled: NonceResponse[] = [];
    let nonceHeaders: Record<string, string> = {};
    try {
      while (!stopping) {
        const t0 = performance.now();
        let fetched = false;
        if (pooled.length === 0) {
          nonceHeaders = await signedNonceHeaders(a, target);
          const nr = await request(target, { headers: nonceHeaders, dispatcher });
          const nonceText = await nr.body.text();
          if (nr.statusCode !== 200) {
            errors++;
            if (errors > 50) throw new Error(`nonce ${nr.statusCode}: ${nonceText}`);
            continue;
          }
          const answer = JSON.parse(nonceText) as NonceResponse | NonceBatchResponse;
          if ('nonces' in answer) {
            for (const n of answer.nonces) pooled.push({ ...n, expires_in: answer.expires_in });
          } else pooled.push(answer);
          fetched = true;
        }
        const t1 = performance.now();
        const nonce = pooled.shift() as NonceResponse;
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
          if (fetched) lat.nonce.add(t1 - t0);
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
  await sleep(window.warmup);

  const cpu0 = services.map((s) => procCpuMs(s.child.pid as number));
  const client0 = process.cpuUsage();
  const w0 = performance.now();
  measuring = true;
  await sleep(window.seconds);
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
export function bareCryptoMsPerFlow(b: BareInputs): number {
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
