/**
 * Worker processes of a collector or gateway (`--workers N`, `COLLECTOR_WORKERS`, `GATEWAY_WORKERS`):
 * a node:cluster primary forks N copies of the same command, which share one listening port (the
 * primary accepts and hands connections out round-robin). The primary serves nothing itself: it
 * starts the workers, replaces one that dies (counted in `geofence_worker_restarts_total`), answers
 * the workers' requests for the Prometheus metrics of all workers, and on SIGTERM/SIGINT asks each
 * worker to drain and waits for them.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../logger.js';
import { serveAggregateMetrics } from './cluster-metrics.js';

/** Environment variable telling a worker its slot (0 … N−1; a replacement takes over its slot). */
const WORKER_SLOT_ENV = 'GEOFENCE_WORKER_SLOT';

/**
 * This process's worker slot (0 … N−1) when it is a cluster worker, for per-worker files: stable
 * across replacements, so they do not multiply with restarts.
 */
export function workerSlot(): number | undefined {
  const v = process.env[WORKER_SLOT_ENV];
  return cluster.isWorker && v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** The number of worker processes a setting asks for (`auto`: one per available core). */
export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** Options of {@link startPrimary}. */
export interface PrimaryOptions {
  role: 'collector' | 'gateway';
  workers: number;
  serviceName: string;
  scheme: 'http' | 'https';
  log: Logger;
  /** How long workers may take to drain on shutdown before they are killed (default 30 s). */
  drainTimeoutMs?: number;
}

/** A running primary. */
export interface Primary {
  /** Base URL the workers listen on. */
  url: string;
  /** Stops every worker gracefully (SIGTERM: each drains its in-flight requests), then resolves. */
  close(): Promise<void>;
}

/** Restart delay after a death: doubles per quick death (≤ 5 s), so a crash loop does not spin. */
function restartDelayMs(quickDeaths: number): number {
  return Math.min(5000, 100 * 2 ** quickDeaths);
}

/** A worker that lived at least this long before dying resets the back-off. */
const STABLE_AFTER_MS = 30_000;

/**
 * Forks the workers and resolves once all listen. A worker that exits before it listens fails the
 * start (its own error is on stderr): a configuration or dependency problem would fail every
 * replacement too. Must run in the cluster primary.
 */
export async function startPrimary(o: PrimaryOptions): Promise<Primary> {
  const registry = new Registry();
  registry.setDefaultLabels({ service: o.serviceName });
  const restarts = new Counter({
    name: 'geofence_worker_restarts_total',
    help: 'Worker processes that died (crashed, killed or exited) and were replaced by the primary',
    registers: [registry],
  });
  new Gauge({
    name: 'geofence_workers',
    help: 'Worker processes currently running',
    registers: [registry],
    collect() {
      this.set(Object.values(cluster.workers ?? {}).filter((w) => w?.isConnected()).length);
    },
  });
  // Workers that listen (and so can answer a metrics collection); a new worker joins when it listens.
  const listening = new Set<number>();
  cluster.on('listening', (w: Worker) => listening.add(w.id));
  cluster.on('exit', (w: Worker) => listening.delete(w.id));
  serveAggregateMetrics(registry, () =>
    [...listening].map((id) => cluster.workers?.[id]).filter((w): w is Worker => w?.isConnected() === true),
  );

  let stopping = false;
  let quickDeaths = 0;
  let host = '';
  const bornAt = new Map<number, number>();
  const slotOf = new Map<number, number>();
  const fork = (slot: number) => {
    const w = cluster.fork({ [WORKER_SLOT_ENV]: String(slot) });
    bornAt.set(w.id, Date.now());
    slotOf.set(w.id, slot);
    return w;
  };

  const first = Array.from({ length: o.workers }, (_, slot) => fork(slot));
  await new Promise<void>((resolve, reject) => {
    let up = 0;
    const onListening = (_w: Worker, a: { address: string; port: number; addressType: number | string }) => {
      host = `${a.addressType === 6 ? `[${a.address}]` : a.address}:${a.port}`;
      up += 1;
      if (up === o.workers) done(null);
    };
    const onExit = (w: Worker, code: number | null, signal: string | null) => {
      if (first.includes(w))
        done(new Error(`${o.role} worker exited during start (${signal ?? `code ${code}`})`));
    };
    const done = (err: Error | null) => {
      cluster.off('listening', onListening);
      cluster.off('exit', onExit);
      if (err) {
        stopping = true;
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
        reject(err);
      } else resolve();
    };
    cluster.on('listening', onListening);
    cluster.on('exit', onExit);
  });

  cluster.on('exit', (w: Worker, code: number | null, signal: string | null) => {
    const lived = Date.now() - (bornAt.get(w.id) ?? 0);
    const slot = slotOf.get(w.id) ?? 0;
    bornAt.delete(w.id);
    slotOf.delete(w.id);
    if (stopping) return;
    restarts.inc();
    quickDeaths = lived >= STABLE_AFTER_MS ? 0 : quickDeaths + 1;
    const delay = restartDelayMs(quickDeaths);
    o.log.warn({ worker_pid: w.process.pid, code, signal, restart_in_ms: delay }, `${o.role} worker died`);
    // Not unref'd: with every worker dead the primary has nothing else keeping it alive.
    setTimeout(() => {
      if (!stopping) fork(slot);
    }, delay);
  });

  const url = `${o.scheme}://${host}`;
  o.log.info(
    {
      url,
      workers: o.workers,
      worker_pids: Object.values(cluster.workers ?? {}).map((w) => w?.process.pid),
    },
    `${o.role} listening`,
  );

  return {
    url,
    close: async () => {
      stopping = true;
      const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      const exited = alive.map(
        (w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))),
      );
      for (const w of alive) w.process.kill('SIGTERM');
      const deadline = setTimeout(() => {
        for (const w of alive) if (!w.isDead()) w.process.kill('SIGKILL');
      }, o.drainTimeoutMs ?? 30_000);
      await Promise.all(exited);
      clearTimeout(deadline);
      o.log.info(`${o.role} stopped`);
    },
  };
}
