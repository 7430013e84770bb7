/**
 * Full-flow benchmark (issue 13): N concurrent software agents (distinct P-256 keys registered in the
 * collector's SQLite registry), each a closed loop of signed `GET /nonce` → build and sign the payload
 * (JCS payload signature + RFC 9421 headers) → `POST /metrics`, over HTTPS with certificate
 * verification (undici Agent per agent, demo CA, keep-alive), for a fixed window after a warm-up.
 * The collector and the enforcing gateway (`GATEWAY_POLICY_ENFORCEMENT=true`) run as separate
 * processes (`geofence collector|gateway` from the TypeScript sources via tsx, as the tests'
 * `spawnService` does; `BENCH_SERVICES=dist` runs the built CLI instead); rate limits are off. Two scenarios: direct to the collector, and through the
 * enforcing gateway (both requests of a flow go to the gateway, which forwards them to the collector).
 * A third, `floor`, runs the same load against bench/lib/floor-service.mjs: bare `node:https` doing the
 * three verifications and a durable append per record and nothing else, so `*_cpu_vs_floor` says how
 * far a service is from what Node.js itself needs for a flow on this machine.
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
 * Each scenario runs with one nonce per flow (`n1`) and with nonce batches (`n16`: one signed
 * `GET /nonce?…&count=16` per 16 flows, SPEC §16); `bare_crypto_per_flow` is the three verifications
 * of an n1 flow, so the n16 ratios are against more crypto than such a flow needs (2 + 1/16).
 *
 * Profile the services under this load with `BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"` (node
 * flags for the service processes only; NODE_OPTIONS refuses --cpu-prof).
 *
 * Run: node --import tsx bench/flow.bench.ts [--agents N] [--seconds S] [--warmup S]
 *      [--scenarios floor,direct,gateway] [--nonce-batch 1,16] [--rounds R] [--json[=DIR] | --json DIR]
 *      (`npm run bench -- --json=DIR` passes `--json=DIR` through scripts/bench.mjs)
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRegistry } from '@geofence/verifier';
import { ensureDemoPki } from '../apps/reference-server/src/tls.js';
import { register, softAgent } from '../apps/reference-server/test/helpers/soft-agent.js';
import {
  argOf,
  type BareInputs,
  bareCryptoMsPerFlow,
  CLK_TCK,
  fmt,
  LOG_LEVEL,
  median,
  runScenario,
  type ScenarioResult,
  startFloorService,
  startService,
} from './lib/flow-load.js';

const args = process.argv.slice(2);
const arg = (name: string) => argOf(args, name);
const AGENTS = Number(arg('--agents') || 4);
const SECONDS = Number(arg('--seconds') || 10);
const WARMUP = Number(arg('--warmup') || 2);
const SCENARIOS = (arg('--scenarios') || 'floor,direct,gateway').split(',');
/** Nonces per signed `GET /nonce` (`&count=n`, SPEC §16): each scenario runs once per value. */
const NONCE_BATCHES = (arg('--nonce-batch') || '1,16').split(',').map(Number);
/** Every scenario × nonce batch, named `direct.n1`, `gateway.n16`, … */
const RUNS = SCENARIOS.flatMap((scenario) =>
  NONCE_BATCHES.map((n) => ({ scenario, n, name: `${scenario}.n${n}` })),
);
/** Rounds of all scenarios (interleaved); with more than one, medians and min/max are printed. */
const ROUNDS = Number(arg('--rounds') || 1);

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
    const floor = SCENARIOS.includes('floor') ? await startFloorService(dir, pki.paths) : undefined;
    if (floor) children.push(floor.child);
    const services = [collector, ...(gateway ? [gateway] : [])];
    for (let round = 0; round < ROUNDS; round++) {
      for (const { scenario, n, name } of RUNS) {
        const base =
          scenario === 'gateway'
            ? gateway?.url
            : scenario === 'direct'
              ? collector.url
              : scenario === 'floor'
                ? floor?.url
                : undefined;
        if (!base) throw new Error(`unknown scenario ${scenario} (floor, direct, gateway)`);
        results.push(
          await runScenario(
            name,
            base,
            agents,
            pki.ca,
            scenario === 'floor' && floor ? [floor] : services,
            (b) => {
              bare ??= b;
            },
            { warmup: WARMUP, seconds: SECONDS, nonceBatch: n },
          ),
        );
      }
    }
  } finally {
    stop();
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
  }
  if (!bare) throw new Error('no flow completed');
  const bareMs = bareCryptoMsPerFlow(bare);

  const lines = [
    `flow.agents: ${AGENTS} agents`,
    `flow.window: ${SECONDS} s (after ${WARMUP} s warm-up)`,
    `flow.bare_crypto_per_flow: ${fmt(bareMs)} ms (3 × ECDSA P-256 verify, in-process)`,
  ];
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
  for (const { scenario, name } of RUNS) {
    const rs = results.filter((r) => r.scenario === name);
    const p = `flow.${name}`;
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
      // Against what bare Node.js needs for the same flow in the same run (same nonce batch).
      const floorMs = results
        .filter((r) => r.scenario === name.replace(/^[a-z]+\./, 'floor.'))
        .map((r) => r.cpuMsPerFlow.floor as number);
      if (scenario !== 'floor' && floorMs.length > 0)
        stat(`${p}.${role}_cpu_vs_floor`, [median(ms) / median(floorMs)], 'ratio', 2);
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
  if (process.env.BENCH_KEEP_DIR) process.stderr.write(`kept ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
