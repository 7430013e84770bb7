/**
 * Opens what a service needs from its configuration: registry, nonce store, record store, global geo
 * policy, EK trust anchors (the attestation issuer is in attestation-issuer.ts). Paths default to files in the data directory.
 */
import cluster from 'node:cluster';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  type GeoPolicy,
  JsonFileRegistry,
  MemoryNonceStore,
  type NonceStore,
  type PendingEnrollmentStore,
  PostgresDatabase,
  PostgresPendingEnrollmentStore,
  PostgresRecordStore,
  PostgresRegistry,
  type RecordStore,
  RedisNonceStore,
  type Registry,
  SqliteNonceStore,
  SqliteRegistry,
  urlWithoutPassword,
} from '@geofence/verifier';
import { Redis } from 'ioredis';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { SqlitePendingEnrollmentStore } from './pending-enrollments.js';
import { filePreRegistrations, type PreRegistrationStore } from './preregistrations.js';
import { PostgresPreRegistrations } from './preregistrations-postgres.js';
import { RedisTokenBuckets } from './rate-limit-redis.js';
import { SqliteRecordStore } from './records.js';
import type { RateLimiters } from './server/http.js';

/** Registry file of a configuration. */
export function registryPath(cfg: Config): string {
  return resolve(
    cfg.dataDir,
    cfg.registry.path ?? (cfg.registry.kind === 'json' ? 'registry.json' : 'registry.db'),
  );
}

/** Whether `cfg` keeps anything in PostgreSQL (`REGISTRY_TYPE=postgres` or `RECORDS_STORE=postgres`). */
export function usesPostgres(cfg: Config): boolean {
  return cfg.registry.kind === 'postgres' || cfg.recordsStore === 'postgres';
}

/**
 * Connects to the configured PostgreSQL (`DATABASE_URL`, pool of `DATABASE_POOL_MAX`) and applies the
 * schema migrations. One per process, shared by its Postgres stores.
 */
export async function openDatabase(cfg: Config, onError?: (err: Error) => void): Promise<PostgresDatabase> {
  const url = cfg.database.url;
  if (!url) throw new Error('DATABASE_URL is required for the PostgreSQL stores');
  try {
    return await PostgresDatabase.open({
      url,
      poolMax: cfg.database.poolMax,
      ...(onError ? { onError } : {}),
    });
  } catch (err) {
    const why = ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
    throw new Error(`cannot connect to PostgreSQL at ${urlWithoutPassword(url)} (DATABASE_URL): ${why}`);
  }
}

/** `store`, whose `close` also closes `db` (a store that opened the database for itself alone). */
function owning<T extends { close(): Promise<void> }>(store: T, db: PostgresDatabase): T {
  const close = store.close.bind(store);
  return Object.assign(store, {
    close: async () => {
      await close();
      await db.close();
    },
  });
}

/**
 * Opens the registry (SQLite by default, JSON file or PostgreSQL when configured). A Postgres registry
 * uses `db` when given (the caller closes it), else a database of its own that its `close` closes.
 */
export async function openRegistry(
  cfg: Config,
  onError?: (err: Error) => void,
  db?: PostgresDatabase,
): Promise<Registry> {
  if (cfg.registry.kind === 'postgres') {
    const own = db ? undefined : await openDatabase(cfg, onError);
    const reg = await PostgresRegistry.open({
      db: (db ?? own) as PostgresDatabase,
      ...(onError ? { onError } : {}),
    });
    return own ? owning(reg, own) : reg;
  }
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const path = registryPath(cfg);
  return cfg.registry.kind === 'json'
    ? JsonFileRegistry.open({ path, ...(onError ? { onError } : {}) })
    : SqliteRegistry.open({ path, busyTimeoutMs: cfg.sqliteBusyTimeoutMs, ...(onError ? { onError } : {}) });
}

/**
 * Where operator pre-registrations live: PostgreSQL with a Postgres registry (through `db` when given,
 * else a database of its own that its `close` closes), else `<dataDir>/preregistered.json`.
 */
export async function openPreRegistrations(
  cfg: Config,
  db?: PostgresDatabase,
): Promise<PreRegistrationStore> {
  if (cfg.registry.kind !== 'postgres') return filePreRegistrations(cfg.dataDir);
  if (db) return new PostgresPreRegistrations(db);
  const own = await openDatabase(cfg);
  return owning(new PostgresPreRegistrations(own), own);
}

/**
 * Where pending enrolments live: PostgreSQL with a Postgres registry (so `/enroll` and its completion
 * may hit different replicas), else `<dataDir>/pending-enrollments.db` shared by the processes of this
 * host (cluster workers).
 */
export function openPendingEnrollments(
  cfg: Config,
  db: PostgresDatabase | undefined,
): PendingEnrollmentStore & { close?(): void } {
  // A fleet shares PostgreSQL; the workers of one host share a SQLite file, so /enroll and its
  // /complete may reach different processes either way.
  if (cfg.registry.kind === 'postgres' && db) return new PostgresPendingEnrollmentStore(db);
  return new SqlitePendingEnrollmentStore(resolve(cfg.dataDir, 'pending-enrollments.db'), {
    busyTimeoutMs: cfg.sqliteBusyTimeoutMs,
  });
}

/**
 * Opens the configured nonce store. `onRedisError` receives the Redis client's connection errors
 * (ioredis emits one per failed reconnect; without a listener it prints "Unhandled error event").
 */
export async function openNonceStore(cfg: Config, onRedisError?: (err: Error) => void): Promise<NonceStore> {
  const common = { ttlSeconds: cfg.nonce.ttlSeconds, maxOutstanding: cfg.nonce.maxOutstanding };
  switch (cfg.nonce.store) {
    case 'memory':
      return new MemoryNonceStore(common);
    case 'sqlite':
      return SqliteNonceStore.open({
        path: resolve(cfg.dataDir, cfg.nonce.sqlitePath ?? 'nonces.db'),
        busyTimeoutMs: cfg.sqliteBusyTimeoutMs,
        ...common,
      });
    case 'redis': {
      const client = await connectRedis(cfg, onRedisError);
      return new RedisNonceStore({ client, ownsClient: true, ...common });
    }
  }
}

/**
 * A client of the configured Redis (`REDIS_URL`), connected. While Redis is down or frozen every
 * call must fail fast (503 upstream) rather than wait: no offline queue (a call while disconnected
 * fails at once), a reply deadline per command, and no silent resend after a reconnect of commands
 * whose outcome the caller already reported. The client keeps reconnecting (ioredis' default
 * back-off, at most 2 s apart), so the service recovers by itself when Redis is back. `onError`
 * receives connection errors after the first connection (ioredis emits one per failed reconnect;
 * without a listener it prints "Unhandled error event").
 */
export async function connectRedis(cfg: Config, onError?: (err: Error) => void): Promise<Redis> {
  const client = new Redis(cfg.nonce.redisUrl as string, {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: cfg.nonce.redisCommandTimeoutMs,
    connectTimeout: cfg.nonce.redisConnectTimeoutMs,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
  });
  // Until the first connection, errors are collected for one clear start-up error instead of a
  // log line per attempt; afterwards they go to the service's (rate-limited) log.
  let firstError: Error | undefined;
  const atStart = (err: Error) => {
    firstError ??= err;
  };
  client.on('error', atStart);
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    const why = (firstError ?? (err as Error)).message;
    throw new Error(
      `cannot connect to Redis at ${urlWithoutPassword(cfg.nonce.redisUrl as string)} (REDIS_URL): ${why}`,
    );
  } finally {
    client.off('error', atStart);
  }
  // Always listened to: an unlistened 'error' would print "Unhandled error event" per reconnect.
  client.on('error', onError ?? (() => undefined));
  return client;
}

/**
 * Logs Redis connection errors at most once per 10 s: while Redis is down ioredis reports every
 * reconnect attempt, which would flood the log without saying anything new.
 */
export function redisErrorLogger(log: Logger, what: string): (err: Error) => void {
  let last = 0;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - last < 10_000) {
      suppressed += 1;
      return;
    }
    log.warn({ err: err.message, suppressed }, `${what}: Redis connection error`);
    last = now;
    suppressed = 0;
  };
}

/**
 * In a cluster worker with in-process rate limits, each worker has its own buckets: a client whose
 * connections land on N workers gets up to N times the budget. Said once at start (per worker).
 */
export function warnPerWorkerLimits(cfg: Config, log: Logger): void {
  if (cluster.isWorker && cfg.rateLimit.enabled && rateLimitStore(cfg) === 'memory') {
    log.warn(
      'rate limits are per worker process (RATE_LIMIT_STORE=memory): set RATE_LIMIT_STORE=redis to share them',
    );
  }
}

/** Where the rate limit buckets live: `RATE_LIMIT_STORE`, else Redis when the nonces are there. */
export function rateLimitStore(cfg: Config): 'memory' | 'redis' {
  return cfg.rateLimit.bucketStore ?? (cfg.nonce.store === 'redis' ? 'redis' : 'memory');
}

/**
 * The shared (Redis) rate limiters of `cfg` with the client to close, or undefined when limits are
 * off or kept in memory (then `serviceApp` makes in-process ones).
 */
export async function openSharedRateLimiters(
  cfg: Config,
  onRedisError?: (err: Error) => void,
): Promise<{ limiters: RateLimiters; close(): Promise<void> } | undefined> {
  if (!cfg.rateLimit.enabled || rateLimitStore(cfg) !== 'redis') return undefined;
  const client = await connectRedis(cfg, onRedisError);
  const rl = cfg.rateLimit;
  return {
    limiters: {
      ip: new RedisTokenBuckets({ client, ratePerSecond: rl.perIpPerSecond, burst: rl.perIpBurst }),
      keyid: new RedisTokenBuckets({ client, ratePerSecond: rl.perKeyidPerSecond, burst: rl.perKeyidBurst }),
      store: 'redis',
    },
    close: async () => {
      await client.quit().catch(() => client.disconnect());
    },
  };
}

/**
 * Opens the record store (`RECORDS_STORE`): SQLite by default, PostgreSQL through `db` when given (the
 * caller closes it), else through a database of its own that its `close` closes.
 */
export async function openRecords(cfg: Config, db?: PostgresDatabase): Promise<RecordStore> {
  if (cfg.recordsStore === 'postgres') {
    if (db) return new PostgresRecordStore(db);
    const own = await openDatabase(cfg);
    return owning(new PostgresRecordStore(own), own);
  }
  return new SqliteRecordStore(resolve(cfg.dataDir, cfg.recordsPath ?? 'records.db'), {
    busyTimeoutMs: cfg.sqliteBusyTimeoutMs,
  });
}

/**
 * The global geo policy from `geo.allow` entries plus the original ALLOWED_REGIONS / ALLOWED_STATES /
 * ALLOWED_CITIES lists. The original lists were independent (region ∈ list ∧ state ∈ list ∧ city ∈ list);
 * they are expanded to the cross product of hierarchical entries, which is exactly that semantics.
 * Undefined when nothing is configured (then only per-agent policies apply).
 */
export function globalGeoPolicy(cfg: Config): GeoPolicy | undefined {
  const allow: Array<{ region: string; state?: string; city?: string }> = [...cfg.geo.allow];
  const { allowedRegions: regions, allowedStates: states, allowedCities: cities } = cfg.geo;
  if (regions.length > 0) {
    for (const region of regions) {
      if (states.length === 0) allow.push({ region });
      for (const state of states) {
        if (cities.length === 0) allow.push({ region, state });
        for (const city of cities) allow.push({ region, state, city });
      }
    }
  }
  const policy: GeoPolicy = {};
  if (allow.length > 0) policy.allow = allow;
  if (cfg.geo.maxAccuracyM !== undefined) policy.max_accuracy_m = cfg.geo.maxAccuracyM;
  return Object.keys(policy).length > 0 ? policy : undefined;
}

/** The verifier's `maxSpeedKmh` option for the configured `geo.maxSpeedKmh` (0: no check). */
export function maxSpeedOption(cfg: Config): number | false {
  return cfg.geo.maxSpeedKmh === 0 ? false : cfg.geo.maxSpeedKmh;
}

/** PEM texts of the configured EK CA files. */
export function readEkCaBundle(cfg: Config): string[] {
  return cfg.enrollment.ekCaPaths.map((p) => readFileSync(resolve(p), 'utf8'));
}
