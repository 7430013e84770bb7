/**
 * Fleet benchmark (issue 12 item 6): full flows/s and collector CPU per flow of one collector with 1
 * and with 2 worker processes (`COLLECTOR_WORKERS`, node:cluster on one port), on each back end:
 *
 * - `sqlite`: SQLite nonce store and SQLite records on this host (the one-host fleet);
 * - `redis`: Redis nonce store (a throwaway redis-server started here), SQLite records;
 * - `postgres`: the fleet mode — PostgreSQL registry and records (a throwaway cluster started here,
 *   one database per setup) and Redis nonces.
 *
 * The load is bench/flow.bench.ts's (bench/lib/flow-load.ts): N software agents, each a closed loop
 * of signed `GET /nonce` → sign → `POST /metrics` over HTTPS with verification, straight to the
 * collector; rate limits off. The collector's CPU is its primary's plus its workers' (/proc). The
 * agents run in this process and share the cores with the collector: on a 2-core machine the
 * scaling ratio is bounded by that, CPU per flow is the stable figure.
 *
 * Run: node --import tsx bench/fleet.bench.ts [--agents N] [--seconds S] [--warmup S]
 *      [--workers 1,2] [--backends sqlite,redis,postgres] [--rounds R] [--json[=DIR] | --json DIR]
 */
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresDatabase, PostgresRegistry, SqliteRegistry } from '@geofence/verifier';
import Pg from 'pg';
import { ensureDemoPki } from '../apps/reference-server/src/tls.js';
import { startPostgres, type TestPostgres } from '../apps/reference-server/test/helpers/postgres.js';
import { startRedis, type TestRedis } from '../apps/reference-server/test/helpers/procs.js';
import { register, type SoftAgent, softAgent } from '../apps/reference-server/test/helpers/soft-agent.js';
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
  type Service,
  startService,
} from './lib/flow-load.js';

const args = process.argv.slice(2);
const arg = (name: string) => argOf(args, name);
const AGENTS = Number(arg('--agents') || 8);
const SECONDS = Number(arg('--seconds') || 10);
const WARMUP = Number(arg('--warmup') || 3);
const WORKERS = (arg('--workers') || '1,2').split(',').map(Number);
const BACKENDS = (arg('--backends') || 'sqlite,redis,postgres').split(',');
const ROUNDS = Number(arg('--rounds') || 1);

/** One collector configuration under test. */
interface Setup {
  name: string;
  backend: string;
  workers: number;
  service: Service;
  ca: string;
}

/** A data directory with the agents registered and the demo PKI. */
async function dataDir(
  root: string,
  name: string,
  agents: SoftAgent[],
): Promise<{ dir: string; ca: string }> {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  for (const a of agents) await register(registry, a);
  await registry.close();
  return { dir, ca: (await ensureDemoPki(dir)).ca };
}

/** A fresh database `name` on the cluster, migrated and with the agents registered; its URL. */
async function postgresDatabase(pg: TestPostgres, name: string, agents: SoftAgent[]): Promise<string> {
  const admin = new Pg.Client({ connectionString: pg.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name.replace(/[^a-z0-9_]/g, '_')}"`);
  await admin.end();
  const url = pg.url.replace(/\/postgres$/, `/${name.replace(/[^a-z0-9_]/g, '_')}`);
  const db = await PostgresDatabase.open({ url });
  const registry = await PostgresRegistry.open({ db });
  for (const a of agents) await register(registry, a);
  await registry.close();
  await db.close();
  return url;
}

async function main(): Promise<void> {
  for (const b of BACKENDS)
    if (b !== 'sqlite' && b !== 'redis' && b !== 'postgres') throw new Error(`unknown backend ${b}`);
  const root = mkdtempSync(join(tmpdir(), 'gf-bench-fleet-'));
  const agents = Array.from({ length: AGENTS }, (_, i) => softAgent(`fleet-agent-${i}`));
  let redis: TestRedis | undefined;
  let pg: TestPostgres | undefined;
  const setups: Setup[] = [];
  const results: Array<ScenarioResult & { backend: string; workers: number }> = [];
  let bare: BareInputs | undefined;
  try {
    if (BACKENDS.includes('redis') || BACKENDS.includes('postgres')) redis = await startRedis();
    if (BACKENDS.includes('postgres')) pg = await startPostgres();
    for (const backend of BACKENDS) {
      for (const workers of WORKERS) {
        const name = `${backend}.w${workers}`;
        const { dir, ca } = await dataDir(root, name, agents);
        const service = await startService(dir, 'collector', {
          GEOFENCE_DATA_DIR: dir,
          RATE_LIMIT_ENABLED: 'false',
          GEOFENCE_ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef',
          COLLECTOR_WORKERS: String(workers),
          ...(backend === 'sqlite'
            ? { NONCE_STORE: 'sqlite' }
            : { NONCE_STORE: 'redis', REDIS_URL: (redis as TestRedis).url }),
          ...(backend === 'postgres'
            ? {
                REGISTRY_TYPE: 'postgres',
                RECORDS_STORE: 'postgres',
                DATABASE_URL: await postgresDatabase(pg as TestPostgres, `bench_${name}`, agents),
              }
            : {}),
        });
        setups.push({ name, backend, workers, service, ca });
      }
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of setups) {
        const r = await runScenario(
          s.name,
          s.service.url,
          agents,
          s.ca,
          [s.service],
          (b) => {
            bare ??= b;
          },
          { warmup: WARMUP, seconds: SECONDS },
        );
        results.push({ ...r, backend: s.backend, workers: s.workers });
      }
    }
  } finally {
    for (const s of setups) {
      const c = s.service.child;
      if (c.exitCode === null && c.signalCode === null) {
        const exited = once(c, 'exit');
        c.kill('SIGTERM');
        await exited;
      }
    }
    await redis?.stop();
    await pg?.destroy();
  }
  if (!bare) throw new Error('no flow completed');
  const bareMs = bareCryptoMsPerFlow(bare);

  const lines = [
    `fleet.agents: ${AGENTS} agents`,
    `fleet.window: ${SECONDS} s (after ${WARMUP} s warm-up)`,
    `fleet.bare_crypto_per_flow: ${fmt(bareMs)} ms (3 × ECDSA P-256 verify, in-process)`,
  ];
  if (ROUNDS > 1) lines.push(`fleet.rounds: ${ROUNDS} rounds (figures are medians over rounds)`);
  const stat = (name: string, xs: number[], unit: string, d = 3) => {
    lines.push(`${name}: ${fmt(median(xs), d)} ${unit}`);
    if (ROUNDS > 1)
      lines.push(
        `${name}_min: ${fmt(Math.min(...xs), d)} ${unit}`,
        `${name}_max: ${fmt(Math.max(...xs), d)} ${unit}`,
      );
  };
  for (const backend of BACKENDS) {
    const flowsPerS = new Map<number, number>();
    for (const workers of WORKERS) {
      const rs = results.filter((r) => r.backend === backend && r.workers === workers);
      const p = `fleet.${backend}.w${workers}`;
      const fps = rs.map((r) => r.flowsPerSecond);
      flowsPerS.set(workers, median(fps));
      stat(`${p}.flows_per_s`, fps, 'flows/s', 0);
      lines.push(
        `${p}.flows: ${rs.reduce((n, r) => n + r.flows, 0)} flows (${rs.reduce((n, r) => n + r.errors, 0)} errors)`,
      );
      for (const q of ['p50', 'p99'] as const)
        stat(
          `${p}.flow_${q}`,
          rs.map((r) => r.latencyMs.flow[q]),
          'ms',
        );
      stat(
        `${p}.collector_cpu_per_flow`,
        rs.map((r) => r.cpuMsPerFlow.collector as number),
        'ms',
      );
      stat(
        `${p}.client_cpu_per_flow`,
        rs.map((r) => r.clientCpuMsPerFlow),
        'ms',
      );
    }
    const one = flowsPerS.get(1);
    for (const workers of WORKERS) {
      const n = flowsPerS.get(workers);
      if (workers !== 1 && one && n !== undefined)
        lines.push(`fleet.${backend}.scaling_w${workers}_vs_w1: ${fmt(n / one, 2)} ratio`);
    }
  }
  for (const l of lines) process.stdout.write(`${l}\n`);

  const json = arg('--json');
  if (json !== undefined) {
    const out = json || 'bench-results';
    mkdirSync(out, { recursive: true });
    writeFileSync(
      join(out, 'fleet.json'),
      `${JSON.stringify(
        {
          bench: 'fleet',
          node: process.version,
          agents: AGENTS,
          seconds: SECONDS,
          warmup: WARMUP,
          rounds: ROUNDS,
          workers: WORKERS,
          backends: BACKENDS,
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
  rmSync(root, { recursive: true, force: true });
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
